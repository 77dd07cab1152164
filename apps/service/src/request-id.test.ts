/**
 * `X-Request-Id` over real sockets: kept when it is a plain token, replaced when it could forge
 * a log line or is over-long, generated when absent, echoed on answers, refusals and streams.
 */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { request } from "@realtime/testkit/http";
import { openHttp1 } from "@realtime/testkit/sse-client";
import { buildApp, type Service } from "./app.ts";
import { loadConfig } from "./config.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("X-Request-Id", () => {
  let service: Service;
  let base = "";
  let token = "";

  before(async () => {
    const config = loadConfig({
      NODE_ENV: "test",
      LOG_LEVEL: "silent",
      JWT_SECRET: "r".repeat(32),
    });
    service = await buildApp(config);
    await service.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(service.app.server.address() as AddressInfo).port}`;
    token = await service.auth.issueUserToken({ id: "u_req", name: "Req" });
  });
  after(() => service.shutdown(0));

  test("a plain token is kept and echoed", async () => {
    const reply = await request(`${base}/healthz`, {
      headers: { "x-request-id": "lb-7f3a:0042.b_c-d" },
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers["x-request-id"], "lb-7f3a:0042.b_c-d");
  });

  test("absent, each request gets its own UUID", async () => {
    const [first, second] = await Promise.all([
      request(`${base}/healthz`),
      request(`${base}/healthz`),
    ]);
    assert.match(String(first.headers["x-request-id"]), UUID);
    assert.match(String(second.headers["x-request-id"]), UUID);
    assert.notEqual(first.headers["x-request-id"], second.headers["x-request-id"]);
  });

  test("an id that is not a plain token is replaced, not refused", async () => {
    for (const given of ["a b", "x".repeat(129), "id\tforged", "ü-id"]) {
      const reply = await request(`${base}/healthz`, { headers: { "x-request-id": given } });
      assert.equal(reply.status, 200, given);
      assert.match(String(reply.headers["x-request-id"]), UUID, given);
    }
  });

  test("refusals and streams carry it too", async () => {
    const refused = await request(`${base}/api/events?channel=channel:x`, {
      headers: { "x-request-id": "refused-1" },
    });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers["x-request-id"], "refused-1");
    const stream = await openHttp1(`${base}/api/events?channel=channel:x`, {
      authorization: `Bearer ${token}`,
      "x-request-id": "stream-1",
    });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers["x-request-id"], "stream-1");
    stream.close();
  });
});
