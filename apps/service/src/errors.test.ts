import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { AJV_OPTIONS, registerErrorHandling } from "@realtime/fastify";
import { AppError, appError, Errors, errorBody } from "@realtime/server";
import Fastify, { type FastifyInstance } from "fastify";

describe("catalogue and docs/errors.md agree", () => {
  const docs = readFileSync(new URL("../../../docs/errors.md", import.meta.url), "utf8");
  const rows = new Map<string, number>();
  for (const line of docs.split("\n")) {
    const match = /^\|\s*`(RT_ERR_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|/.exec(line);
    if (!match) continue;
    const [, code, status] = match as unknown as [string, string, string];
    assert.ok(!rows.has(code), `${code} is listed twice in docs/errors.md`);
    rows.set(code, Number(status));
  }
  const catalogue = Object.values(Errors);

  test("the table parsed", () => {
    assert.ok(rows.size > 0, "no rows found in docs/errors.md");
  });

  test("every catalogue code is documented with the same status", () => {
    for (const entry of catalogue) {
      assert.ok(rows.has(entry.code), `${entry.code} is missing from docs/errors.md`);
      assert.equal(rows.get(entry.code), entry.status, `${entry.code} has a different status`);
    }
  });

  test("the docs list no code the catalogue lacks", () => {
    const codes = new Set<string>(catalogue.map((e) => e.code));
    for (const code of rows.keys()) {
      assert.ok(codes.has(code), `docs/errors.md lists ${code}, which is not in the catalogue`);
    }
  });

  test("every code is raised somewhere: the catalogue promises nothing the service never says", () => {
    // A code in the catalogue and the docs that no code path raises is a promise clients
    // program against in vain (RT_ERR_BAD_CURSOR was one: a cursor the server cannot read is
    // answered with a `reset`, `unknown_cursor`, never with a 400).
    // The service's sources, and the packages it serves through (the plugin, the catalogue's
    // own mapping of hub refusals, idempotency keys).
    const roots = ["./", "../../../packages/server/src/", "../../../packages/fastify/src/"].map(
      (path) => new URL(path, import.meta.url),
    );
    const sources = roots
      .flatMap((root) =>
        readdirSync(root, { recursive: true, encoding: "utf8" })
          .filter((file) => file.endsWith(".ts") && !file.endsWith(".test.ts"))
          .map((file) => readFileSync(new URL(file, root), "utf8")),
      )
      .join("\n");
    for (const key of Object.keys(Errors)) {
      assert.match(sources, new RegExp(`\\bErrors\\.${key}\\b`), `nothing raises ${key}`);
    }
  });

  test("codes are unique and keys match codes", () => {
    for (const [key, entry] of Object.entries(Errors)) {
      assert.equal(entry.code, `RT_ERR_${key}`);
    }
  });
});

describe("AppError", () => {
  test("carries the entry's code and status, a custom message and headers", () => {
    const err = appError(Errors.AT_CAPACITY, "full", { "Retry-After": "5" });
    assert.ok(err instanceof AppError);
    assert.ok(err instanceof Error);
    assert.equal(err.code, "RT_ERR_AT_CAPACITY");
    assert.equal(err.status, 503);
    assert.equal(err.message, "full");
    assert.deepEqual(err.headers, { "Retry-After": "5" });
    assert.deepEqual(errorBody(err), { code: "RT_ERR_AT_CAPACITY", message: "full" });
  });

  test("defaults to the catalogue message", () => {
    assert.equal(appError(Errors.NOT_FOUND).message, Errors.NOT_FOUND.message);
    assert.equal(appError(Errors.NOT_FOUND).headers, undefined);
  });
});

describe("registerErrorHandling", () => {
  let app: FastifyInstance;
  const logLines: string[] = [];

  before(async () => {
    app = Fastify({
      bodyLimit: 64,
      ajv: AJV_OPTIONS,
      logger: { level: "error", stream: { write: (line: string) => logLines.push(line) } },
    });
    registerErrorHandling(app);
    app.post(
      "/strict",
      {
        schema: {
          body: {
            type: "object",
            required: ["name"],
            additionalProperties: false,
            properties: { name: { type: "string", maxLength: 5 } },
          },
        },
      },
      async () => ({ ok: true }),
    );
    app.get("/boom", async () => {
      throw new Error("database password is hunter2");
    });
    app.get("/full", async () => {
      throw appError(Errors.AT_CAPACITY, undefined, { "Retry-After": "7" });
    });
    app.get("/teapot", async () => {
      throw Object.assign(new Error("internal detail"), { statusCode: 418 });
    });
    app.get("/thrown-string", async () => {
      throw "not an error";
    });
    await app.ready();
  });

  after(() => app.close());

  async function post(payload: string, contentType = "application/json") {
    return app.inject({
      method: "POST",
      url: "/strict",
      headers: { "content-type": contentType },
      payload,
    });
  }

  function assertJsonError(
    res: { statusCode: number; headers: Record<string, unknown>; json(): unknown },
    status: number,
    code: string,
  ): { code: string; message: string } {
    assert.equal(res.statusCode, status);
    assert.match(String(res.headers["content-type"]), /^application\/json/);
    const body = res.json() as { code: string; message: string };
    assert.deepEqual(Object.keys(body).sort(), ["code", "message"]);
    assert.equal(body.code, code);
    assert.equal(typeof body.message, "string");
    return body;
  }

  test("a valid request passes", async () => {
    const res = await post('{"name":"ada"}');
    assert.equal(res.statusCode, 200);
  });

  test("bad JSON → 400", async () => {
    assertJsonError(await post('{"name":'), 400, "RT_ERR_BAD_REQUEST");
  });

  test("empty JSON body → 400", async () => {
    assertJsonError(await post(""), 400, "RT_ERR_BAD_REQUEST");
  });

  test("body over bodyLimit → 413", async () => {
    assertJsonError(
      await post(JSON.stringify({ name: "x".repeat(100) })),
      413,
      "RT_ERR_PAYLOAD_TOO_LARGE",
    );
  });

  test("unsupported content type → 415", async () => {
    assertJsonError(await post("<a/>", "application/xml"), 415, "RT_ERR_UNSUPPORTED_MEDIA_TYPE");
  });

  test("unknown field → 400 naming the field", async () => {
    const body = assertJsonError(
      await post('{"name":"ada","admin":true}'),
      400,
      "RT_ERR_BAD_REQUEST",
    );
    assert.match(body.message, /unknown field "admin"/);
  });

  test("missing field → 400 naming the field", async () => {
    const body = assertJsonError(await post("{}"), 400, "RT_ERR_BAD_REQUEST");
    assert.match(body.message, /missing required field "name"/);
  });

  test("wrong type → 400, not coerced", async () => {
    const body = assertJsonError(await post('{"name":5}'), 400, "RT_ERR_BAD_REQUEST");
    assert.match(body.message, /^body\.name must be string/);
  });

  test("invalid field → 400 naming the field", async () => {
    const body = assertJsonError(await post('{"name":"too long"}'), 400, "RT_ERR_BAD_REQUEST");
    assert.match(body.message, /^body\.name /);
  });

  test("unknown route → 404", async () => {
    const res = await app.inject({ method: "GET", url: "/nope?x=1" });
    assertJsonError(res, 404, "RT_ERR_NOT_FOUND");
  });

  test("known path, wrong method → 405 with Allow", async () => {
    const res = await app.inject({ method: "DELETE", url: "/strict" });
    assertJsonError(res, 405, "RT_ERR_METHOD_NOT_ALLOWED");
    assert.equal(res.headers.allow, "POST");
  });

  test("thrown Error → 500 with a generic message; the real one is logged", async () => {
    logLines.length = 0;
    const res = await app.inject({ method: "GET", url: "/boom" });
    const body = assertJsonError(res, 500, "RT_ERR_INTERNAL");
    assert.equal(body.message, Errors.INTERNAL.message);
    assert.doesNotMatch(res.body, /hunter2/);
    assert.ok(
      logLines.some((l) => l.includes("hunter2")),
      "the real error should be logged",
    );
  });

  test("a thrown non-Error → 500", async () => {
    assertJsonError(
      await app.inject({ method: "GET", url: "/thrown-string" }),
      500,
      "RT_ERR_INTERNAL",
    );
  });

  test("AppError → its status, code and Retry-After", async () => {
    const res = await app.inject({ method: "GET", url: "/full" });
    const body = assertJsonError(res, 503, "RT_ERR_AT_CAPACITY");
    assert.equal(body.message, Errors.AT_CAPACITY.message);
    assert.equal(res.headers["retry-after"], "7");
  });

  test("another client error keeps its status but not its message", async () => {
    const res = await app.inject({ method: "GET", url: "/teapot" });
    const body = assertJsonError(res, 418, "RT_ERR_BAD_REQUEST");
    assert.doesNotMatch(body.message, /internal detail/);
  });
});
