/**
 * The OpenAPI document at /docs/json: generated from the route schemas, every API route
 * documented (tag, summary, a description and a schema for every response, error bodies the
 * shared `ErrorBody`), every `$ref` resolvable, the UI at /docs; the service's real answers
 * match it; served in production only with `OPENAPI_DOCS=true`. The committed copy,
 * docs/openapi.json: openapi-artifact.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";

const SECRET = "openapi-secret-openapi-secret-openapi-01";

async function build(nodeEnv: "test" | "production", env: Record<string, string> = {}) {
  return buildApp(
    loadConfig({ NODE_ENV: nodeEnv, LOG_LEVEL: "silent", JWT_SECRET: SECRET, ...env }),
    { logger: false },
  );
}

interface Response {
  description?: string;
  content?: Record<string, { schema?: Record<string, unknown> }>;
}

interface Operation {
  tags?: string[];
  summary?: string;
  parameters?: { in: string; name: string; required?: boolean }[];
  requestBody?: unknown;
  responses?: Record<string, Response>;
}

interface Spec {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
}

const ERROR_REF = { $ref: "#/components/schemas/ErrorBody" };

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
        for (const [status, answer] of Object.entries(op.responses ?? {})) {
          const where = `${key} ${status}`;
          assert.ok(answer.description, `${where}: a description`);
          const code = Number(status);
          if (code >= 400) {
            assert.deepEqual(
              answer.content,
              { "application/json": { schema: ERROR_REF } },
              `${where}: an error answers the shared { code, message } ErrorBody`,
            );
          } else if (code === 204) {
            assert.equal(answer.content, undefined, `${where}: no content`);
          } else {
            const types = Object.entries(answer.content ?? {});
            assert.ok(types.length > 0, `${where}: says what it answers`);
            for (const [type, media] of types) {
              assert.ok(media.schema?.type ?? media.schema?.$ref, `${where} ${type}: a schema`);
            }
          }
        }
      }
      // Every route under a rate limit documents its 429 (added from `config: { limit }`).
      for (const key of [
        "GET /api/events",
        "POST /api/publish",
        "GET /api/channels/{channel}/messages",
        "POST /api/chat/messages",
        "GET /api/channels/{channel}/presence",
        "POST /api/auth/dev-login",
        "POST /api/generate/video",
      ]) {
        const op = operations.find((o) => o.key === key)?.op;
        assert.ok(op?.responses?.["429"], `${key}: 429 documented`);
      }
      assert.equal(
        operations.find((o) => o.key === "GET /healthz")?.op.responses?.["429"],
        undefined,
        "no limit, no 429",
      );

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

  it("describes what the service really answers", async () => {
    const service = await build("test");
    try {
      const { app } = service;
      const spec = (await app.inject({ url: "/docs/json" })).json() as Spec;
      const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
      /** The schema with the document's `$ref`s replaced by what they name. */
      const resolve = (value: unknown): unknown => {
        if (Array.isArray(value)) return value.map(resolve);
        if (value === null || typeof value !== "object") return value;
        const ref = (value as { $ref?: string }).$ref;
        if (ref) return resolve(spec.components.schemas[ref.replace("#/components/schemas/", "")]);
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
      };
      let checked = 0;
      /** Asserts the answer's status (the expected one) is documented, and its body fits it. */
      const conforms = async (
        method: "GET" | "POST" | "DELETE",
        path: string,
        url: string,
        status: number,
        options: { token?: string; body?: unknown } = {},
      ) => {
        const answer = await app.inject({
          method,
          url,
          ...(options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {}),
          ...(options.body === undefined ? {} : { payload: options.body as object }),
        });
        const where = `${method} ${url} → ${answer.statusCode}`;
        assert.equal(answer.statusCode, status, `${where}: ${answer.body}`);
        const documented =
          spec.paths[path]?.[method.toLowerCase()]?.responses?.[String(answer.statusCode)];
        assert.ok(documented, `${where}: the status is documented (${answer.body})`);
        const type = String(answer.headers["content-type"] ?? "").split(";")[0] as string;
        if (documented.content === undefined) {
          assert.equal(answer.body, "", `${where}: no body`);
        } else {
          const media = documented.content[type];
          assert.ok(media, `${where}: ${type} is documented`);
          if (type === "application/json") {
            const validate = ajv.compile(resolve(media.schema) as object);
            assert.ok(
              validate(answer.json()),
              `${where}: ${answer.body} fits ${JSON.stringify(validate.errors)}`,
            );
          }
        }
        checked++;
        return answer;
      };

      await conforms("GET", "/healthz", "/healthz", 200);
      await conforms("GET", "/readyz", "/readyz", 200);
      await conforms("GET", "/metrics", "/metrics", 200);
      await conforms("POST", "/api/auth/dev-login", "/api/auth/dev-login", 400, {
        body: { name: "" },
      });
      const login = await conforms("POST", "/api/auth/dev-login", "/api/auth/dev-login", 200, {
        body: { name: "Ada" },
      });
      const { token } = login.json() as { token: string };
      await conforms("GET", "/api/auth/me", "/api/auth/me", 200, { token });
      await conforms("GET", "/api/auth/me", "/api/auth/me", 401);
      await conforms("POST", "/api/auth/logout", "/api/auth/logout", 204);
      const publisher = await service.auth.issueServiceToken({
        service: "openapi",
        scopes: ["publish"],
      });
      await conforms("POST", "/api/publish", "/api/publish", 202, {
        token: publisher,
        body: { channel: "channel:general", event: { type: "note", text: "hi" } },
      });
      await conforms("POST", "/api/publish", "/api/publish", 403, {
        token,
        body: { channel: "channel:general", event: { type: "note" } },
      });
      await conforms("POST", "/api/chat/messages", "/api/chat/messages", 204, {
        token,
        body: { channel: "general", content: "hello" },
      });
      const history = "/api/channels/{channel}/messages";
      await conforms("GET", history, "/api/channels/channel:general/messages", 200, { token });
      const presence = "/api/channels/{channel}/presence";
      await conforms("GET", presence, "/api/channels/channel:general/presence", 200, { token });
      await conforms("GET", presence, "/api/channels/user:someone/presence", 403, { token });
      await conforms("GET", presence, "/api/channels/bad%20name/presence", 400, { token });
      await conforms("GET", "/api/events", "/api/events?channel=bad%20name", 400, { token });
      await conforms("GET", "/api/events", "/api/events?channel=channel:general", 401);
      const submitted = await conforms("POST", "/api/generate/video", "/api/generate/video", 202, {
        token,
        body: { prompt: "a lighthouse at dusk" },
      });
      const { jobId } = submitted.json() as { jobId: string };
      await conforms("GET", "/api/jobs/{jobId}", `/api/jobs/${jobId}`, 200, { token });
      await conforms("DELETE", "/api/jobs/{jobId}", `/api/jobs/${jobId}`, 200, { token });
      await conforms("GET", "/api/jobs/{jobId}", "/api/jobs/no-such-job", 404, { token });
      await conforms("GET", "/api/media/{jobId}", "/api/media/no-such-job", 404, { token });
      assert.equal(checked, 22);
    } finally {
      await service.shutdown(0);
    }
  });
});
