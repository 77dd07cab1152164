/** The web app's static files: types, caching, compression, SPA fallback, JSON 404s kept. */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { registerErrorHandling } from "@realtime/fastify";
import Fastify, { type FastifyInstance } from "fastify";
import { registerPageRoutes } from "./page.ts";

const INDEX =
  '<!doctype html><title>app</title><script type="module" src="/assets/app-Ab12.js"></script>';
const SCRIPT = `console.log(${JSON.stringify("x".repeat(4000))});`;

async function appFor(root: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false }) as unknown as FastifyInstance;
  registerErrorHandling(app);
  app.post("/api/chat/messages", async () => ({}));
  registerPageRoutes(app, { root });
  await app.ready();
  return app;
}

describe("page routes", () => {
  let dir: string;
  let app: FastifyInstance;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "realtime-page-"));
    await mkdir(join(dir, "assets"));
    await writeFile(join(dir, "index.html"), INDEX);
    await writeFile(join(dir, "assets", "app-Ab12.js"), SCRIPT);
    await writeFile(join(dir, "favicon.svg"), "<svg/>");
    app = await appFor(dir);
  });
  after(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves index.html at / with no-cache, an ETag and a CSP", async () => {
    const res = await app.inject({ url: "/" });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(res.headers["cache-control"], "no-cache");
    assert.match(String(res.headers["content-security-policy"]), /script-src 'self'/);
    assert.equal(res.body, INDEX);
    const again = await app.inject({ url: "/", headers: { "if-none-match": res.headers.etag } });
    assert.equal(again.statusCode, 304);
    assert.equal(again.body, "");
  });

  it("serves hashed assets as immutable, compressed as the client accepts", async () => {
    const plain = await app.inject({ url: "/assets/app-Ab12.js" });
    assert.equal(plain.headers["content-type"], "text/javascript; charset=utf-8");
    assert.equal(plain.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.equal(plain.headers["content-encoding"], undefined);
    assert.equal(plain.body, SCRIPT);
    const br = await app.inject({
      url: "/assets/app-Ab12.js",
      headers: { "accept-encoding": "gzip, deflate, br" },
    });
    assert.equal(br.headers["content-encoding"], "br");
    assert.equal(br.headers.vary, "accept-encoding");
    assert.equal(brotliDecompressSync(br.rawPayload).toString(), SCRIPT);
    const gzip = await app.inject({
      url: "/assets/app-Ab12.js",
      headers: { "accept-encoding": "gzip, br;q=0" },
    });
    assert.equal(gzip.headers["content-encoding"], "gzip");
    assert.equal(gunzipSync(gzip.rawPayload).toString(), SCRIPT);
    const svg = await app.inject({ url: "/favicon.svg" });
    assert.equal(svg.headers["content-type"], "image/svg+xml");
    assert.equal(svg.headers["cache-control"], "no-cache");
  });

  it("answers app paths with index.html, and keeps JSON 404s for the API and missing files", async () => {
    for (const url of ["/r/general", "/r/design-review?x=1", "/anything/else", "/docsy"]) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.body, INDEX, url);
    }
    assert.equal((await app.inject({ method: "HEAD", url: "/r/general" })).statusCode, 200);
    // /docs is the API reference's even where it is not served (OPENAPI_DOCS off).
    for (const url of [
      "/api/nope",
      "/api",
      "/docs",
      "/docs/json",
      "/assets/app-Old1.js",
      "/robots.txt",
    ]) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.json().code, "RT_ERR_NOT_FOUND", url);
    }
    // Unknown paths for other methods stay 404, known API paths keep their 405.
    assert.equal((await app.inject({ method: "POST", url: "/r/general" })).statusCode, 404);
    const wrongMethod = await app.inject({ method: "GET", url: "/api/chat/messages" });
    assert.equal(wrongMethod.statusCode, 405);
  });

  it("says how to build the app when there is no build", async () => {
    const empty = await appFor(join(dir, "missing"));
    try {
      for (const url of ["/", "/r/general"]) {
        const res = await empty.inject({ url });
        assert.equal(res.statusCode, 503, url);
        assert.match(res.body, /npm run build:web/);
      }
    } finally {
      await empty.close();
    }
  });
});
