/**
 * The per-request logger is built only when something logs, and whatever a request logs still
 * carries its id: unit checks of the factory on a real pino logger, then the service's own
 * lines over a real socket.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { request } from "@realtime/testkit/http";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import pino from "pino";
import { buildApp, type Service } from "./app.ts";
import { loadConfig } from "./config.ts";
import { RequestLogger, requestLoggerFactory } from "./request-logger.ts";

/** A pino destination that keeps the lines it is given, parsed. */
function capture(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { stream, lines };
}

const makeChild = (logger: FastifyBaseLogger, bindings: Record<string, unknown>, options = {}) =>
  requestLoggerFactory.call(
    {} as FastifyInstance,
    logger,
    bindings,
    options,
    {} as Parameters<typeof requestLoggerFactory>[3],
  );

describe("requestLoggerFactory", () => {
  test("a level the log does not record builds nothing and writes nothing", () => {
    const { stream, lines } = capture();
    const root = pino({ level: "warn" }, stream) as unknown as FastifyBaseLogger;
    const log = makeChild(root, { reqId: "r-1" });
    assert.ok(log instanceof RequestLogger);
    log.info({ a: 1 }, "incoming request");
    log.debug("detail");
    assert.equal((log as unknown as RequestLogger).built, false);
    assert.equal(lines.length, 0);
    assert.equal(log.level, "warn");
  });

  test("a level it records goes out through the child, with the request's id", () => {
    const { stream, lines } = capture();
    const root = pino({ level: "warn" }, stream) as unknown as FastifyBaseLogger;
    const log = makeChild(root, { reqId: "r-2" });
    log.warn({ code: "X" }, "slow");
    log.error(new Error("boom"), "failed");
    assert.equal((log as unknown as RequestLogger).built, true);
    assert.deepEqual(
      lines.map((l) => [l.reqId, l.msg, l.level]),
      [
        ["r-2", "slow", 40],
        ["r-2", "failed", 50],
      ],
    );
    assert.equal(lines[0]?.code, "X");
    // A child of the request's logger keeps the request's id and adds its own bindings.
    log.child({ component: "c" }).warn("from a child");
    assert.equal(lines[2]?.reqId, "r-2");
    assert.equal(lines[2]?.component, "c");
  });

  test("a route's own level or serializers get Fastify's child at once", () => {
    const { stream, lines } = capture();
    const root = pino({ level: "warn" }, stream) as unknown as FastifyBaseLogger;
    const log = makeChild(root, { reqId: "r-3" }, { level: "debug" });
    assert.ok(!(log instanceof RequestLogger));
    log.debug("recorded at the route's level");
    assert.equal(lines[0]?.reqId, "r-3");
  });

  test("the level follows the parent's until the request's own is set", () => {
    const { stream, lines } = capture();
    const root = pino({ level: "warn" }, stream);
    const log = makeChild(root as unknown as FastifyBaseLogger, { reqId: "r-4" });
    root.level = "info";
    log.info("now recorded");
    assert.equal(lines[0]?.reqId, "r-4");
    log.level = "error";
    log.warn("not any more");
    assert.equal(lines.length, 1);
    assert.equal(root.level, "info");
  });
});

describe("request logs of the service", () => {
  let service: Service;
  let base = "";
  const { stream, lines } = capture();

  before(async () => {
    const config = loadConfig({ NODE_ENV: "test", LOG_LEVEL: "info", JWT_SECRET: "l".repeat(32) });
    service = await buildApp(config, { logger: { level: "info", stream } });
    await service.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
  });
  after(() => service.shutdown(0));

  test("the service builds its request loggers with the factory", () => {
    assert.equal(service.app.childLoggerFactory, requestLoggerFactory);
  });

  test("every line a request writes carries its X-Request-Id", async () => {
    const reply = await request(`${base}/api/publish`, {
      method: "POST",
      headers: { "x-request-id": "trace-77", "content-type": "application/json" },
      body: JSON.stringify({ channel: "channel:x", event: { type: "t" } }),
    });
    assert.equal(reply.status, 401);
    const mine = lines.filter((l) => l.reqId === "trace-77");
    const messages = mine.map((l) => l.msg);
    assert.ok(messages.includes("incoming request"), JSON.stringify(messages));
    assert.ok(messages.includes("request rejected"), JSON.stringify(messages));
    assert.ok(messages.includes("request completed"), JSON.stringify(messages));
    // None of its lines went out without the id.
    const unbound = lines.filter((l) => l.reqId === undefined && l.msg === "request rejected");
    assert.equal(unbound.length, 0);
  });
});
