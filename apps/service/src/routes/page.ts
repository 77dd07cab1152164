/** The minimal demo page at `/` (the full demo app replaces it later). */
import { readFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";

const publicDir = new URL("../../public/", import.meta.url);

export function registerPageRoutes(app: FastifyInstance): void {
  const html = readFileSync(new URL("index.html", publicDir));
  const script = readFileSync(new URL("app.js", publicDir));
  app.get("/", async (_request, reply) => reply.type("text/html; charset=utf-8").send(html));
  app.get("/app.js", async (_request, reply) =>
    reply.type("text/javascript; charset=utf-8").send(script),
  );
}
