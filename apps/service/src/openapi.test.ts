/**
 * The OpenAPI document at /docs/json: generated from the route schemas, every API route
 * documented (tag, summary, responses), every `$ref` resolvable, the UI at /docs; served in
 * production only with `OPENAPI_DOCS=true`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";

const SECRET = "openapi-secret-openapi-secret-openapi-01";

async function build(nodeEnv: "test" | "production", env: Record<string, string> = {}) {
  return buildApp(
    loadConfig({ NODE_ENV: nodeEnv, LOG_LEVEL: "silent", JWT_SECRET: SECRET, ...env }),
    { logger: false },
  );
}

interface Operation {
  tags?: string[];
  summary?: string;
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: unknown;
  responses?: Record<string, unknown>;
}

interface Spec {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
}

describe("OpenAPI", () => {
  it("documents every API route, from the route schemas, with resolvable references", async () => {
    const service = await build("test");
    try {
      const response = await service.app.inject({ url: "/docs/json" });
      assert.equal(response.statusCode, 200);
      const spec = JSON.parse(response.body) as Spec;
      assert.match(spec.openapi, /^3\./);

      const operations = Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.entries(ops).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, op })),
      );
      const keys = operations.map((o) => o.key);
      for (const expected of [
        "GET /api/events",
        "POST /api/chat/messages",
        "POST /api/publish",
        "POST /api/auth/dev-login",
        "GET /api/channels/{channel}/presence",
        "GET /api/jobs/{jobId}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
      ]) {
        assert.ok(keys.includes(expected), `${expected} is in the document: ${keys.join(", ")}`);
      }
      // The web app's files and the docs UI itself are not API.
      assert.deepEqual(
        keys.filter((k) => !/ \/(api\/|healthz|readyz|metrics)/.test(k)),
        [],
      );
      for (const { key, op } of operations) {
        assert.ok(
          op.tags?.length && op.tags[0] !== "undocumented",
          `${key} declares no docs (config: { docs } on the route, see api-docs.ts): add them`,
        );
        assert.ok(op.summary, `${key}: summary`);
        assert.ok(Object.keys(op.responses ?? {}).length > 0, `${key}: responses`);
      }

      // Validation schemas came through: the query of the stream, the bodies of the posts.
      const events = spec.paths["/api/events"]?.get;
      assert.deepEqual(
        events?.parameters?.map((p) => `${p.in}:${p.name}:${p.required === true}`),
        ["query:channel:true", "query:lastEventId:false"],
      );
      assert.ok(spec.paths["/api/publish"]?.post?.requestBody, "publish body");
      for (const path of ["/api/publish", "/api/chat/messages"]) {
        assert.deepEqual(
          spec.paths[path]?.post?.parameters?.map(
            (p) => `${p.in}:${p.name}:${p.required === true}`,
          ),
          ["header:idempotency-key:false"],
          `${path}: the optional Idempotency-Key header`,
        );
      }
      assert.ok(spec.paths["/api/chat/messages"]?.post?.requestBody, "chat body");
      const text = JSON.stringify(spec);
      assert.match(text, /text\/event-stream/);
      for (const [, name] of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
        assert.ok(spec.components.schemas[name as string], `$ref ${name} resolves`);
      }

      const ui = await service.app.inject({ url: "/docs" });
      assert.equal(ui.statusCode, 200);
      assert.match(String(ui.headers["content-type"]), /text\/html/);
    } finally {
      await service.shutdown(0);
    }
  });

  it("is not served in production without OPENAPI_DOCS", async () => {
    const service = await build("production");
    try {
      for (const url of ["/docs", "/docs/json", "/docs/yaml"]) {
        const response = await service.app.inject({ url });
        assert.equal(response.statusCode, 404, url);
        assert.equal(response.json().code, "RT_ERR_NOT_FOUND", `${url}: the catalogue's 404`);
      }
      assert.equal((service.app as unknown as { swagger?: unknown }).swagger, undefined);
    } finally {
      await service.shutdown(0);
    }
  });

  it("is served in production with OPENAPI_DOCS=true, the same document as elsewhere", async () => {
    const production = await build("production", { OPENAPI_DOCS: "true" });
    const test = await build("test");
    try {
      const response = await production.app.inject({ url: "/docs/json" });
      assert.equal(response.statusCode, 200);
      const spec = response.json() as Spec;
      assert.match(spec.openapi, /^3\./);
      const elsewhere = (await test.app.inject({ url: "/docs/json" })).json() as Spec;
      assert.deepEqual(Object.keys(spec.paths), Object.keys(elsewhere.paths));

      const ui = await production.app.inject({ url: "/docs" });
      assert.equal(ui.statusCode, 200);
      assert.match(String(ui.headers["content-type"]), /text\/html/);
      // Under the app's CSP, loosened for inline styles on the UI's own pages only.
      assert.match(String(ui.headers["content-security-policy"]), /style-src [^;]*'unsafe-inline'/);
      const app = await production.app.inject({ url: "/healthz" });
      assert.doesNotMatch(String(app.headers["content-security-policy"]), /'unsafe-inline'/);
    } finally {
      await production.shutdown(0);
      await test.shutdown(0);
    }
  });
});
