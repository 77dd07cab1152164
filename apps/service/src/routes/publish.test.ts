import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp1 } from "@realtime/testkit/sse-client";

describe("POST /api/publish", () => {
  let svc: RunningService;
  let serviceToken: string;
  before(async () => {
    svc = await startService();
    serviceToken = await svc.service.auth.issueServiceToken({
      service: "worker",
      scopes: ["publish"],
    });
  });
  after(() => svc.stop());

  it("puts a service's event on the broker path; subscribers receive it", async () => {
    const ada = await svc.login("Ada");
    const stream = await openHttp1(`${svc.url}/api/events?channel=user:${ada.user.id}`, {
      authorization: `Bearer ${ada.token}`,
    });
    const res = await svc.post("/api/publish", serviceToken, {
      channel: `user:${ada.user.id}`,
      event: { type: "notification", message: "report ready", reportId: "r_1" },
    });
    assert.equal(res.status, 202);
    assert.deepEqual(res.body, { channel: `user:${ada.user.id}`, offset: 1 });
    const event = await stream.waitFor((e) => e.event === undefined);
    const data = JSON.parse(event.data);
    assert.equal(data.type, "notification");
    assert.equal(data.reportId, "r_1");
    assert.equal(data.channel, `user:${ada.user.id}`);
    stream.close();
  });

  it("403 for a user token and for a service token without the publish scope", async () => {
    const ada = await svc.login("Ada");
    const readOnly = await svc.service.auth.issueServiceToken({
      service: "reader",
      scopes: ["read"],
    });
    for (const token of [ada.token, readOnly]) {
      const res = await svc.post("/api/publish", token, {
        channel: "channel:a",
        event: { type: "x" },
      });
      assert.equal(res.status, 403);
      assert.equal((res.body as { code: string }).code, "RT_ERR_FORBIDDEN");
    }
    const anonymous = await svc.post("/api/publish", null, {
      channel: "channel:a",
      event: { type: "x" },
    });
    assert.equal(anonymous.status, 401);
  });

  it("400 for bad channels and events, 413 for an oversized event", async () => {
    for (const body of [
      { channel: "room:a", event: { type: "x" } },
      { channel: "channel:a", event: { type: "reset" } },
      { channel: "channel:a", event: { type: "Bad Type" } },
      { channel: "channel:a", event: { type: "x", channel: "user:u_other" } },
      { channel: "channel:a", event: { type: "x", "bad\nfield": 1 } },
      { channel: "channel:a", event: [1] },
      { channel: "channel:a", event: { type: "x" }, extra: true },
    ]) {
      const res = await svc.post("/api/publish", serviceToken, body);
      assert.equal(res.status, 400, JSON.stringify(body));
    }
    const big = await svc.post("/api/publish", serviceToken, {
      channel: "channel:a",
      event: { type: "x", content: "y".repeat(20_000) },
    });
    assert.equal(big.status, 413);
  });
});

describe("POST /api/publish with Idempotency-Key", () => {
  let svc: RunningService;
  let worker: string;
  let billing: string;
  before(async () => {
    svc = await startService({ IDEMPOTENCY_WINDOW_MS: "60000" });
    worker = await svc.service.auth.issueServiceToken({ service: "worker", scopes: ["publish"] });
    billing = await svc.service.auth.issueServiceToken({
      service: "billing",
      scopes: ["publish"],
    });
  });
  after(() => svc.stop());

  const dataOf = (e: { event?: string | undefined; data: string }) =>
    e.event === undefined ? (JSON.parse(e.data) as Record<string, unknown>) : null;

  it("a retry gets the first answer and the replay header; one event reaches subscribers", async () => {
    const ada = await svc.login("Ada");
    const channel = `user:${ada.user.id}`;
    const stream = await openHttp1(`${svc.url}/api/events?channel=${channel}`, {
      authorization: `Bearer ${ada.token}`,
    });
    const key = { "idempotency-key": "4f0d7c1e-0b8a-4e55-9a43-5d8a2f6c9b10" };
    const event = { type: "notification", message: "report ready" };
    const first = await svc.post("/api/publish", worker, { channel, event }, key);
    assert.equal(first.status, 202);
    assert.deepEqual(first.body, { channel, offset: 1 });
    assert.equal(first.headers["idempotent-replayed"], undefined, "a first publish is no replay");
    // The retry publishes nothing, also when its fields come in another order.
    for (const body of [
      { channel, event },
      { channel, event: { message: "report ready", type: "notification" } },
    ]) {
      const again = await svc.post("/api/publish", worker, body, key);
      assert.equal(again.status, 202);
      assert.deepEqual(again.body, { channel, offset: 1 }, "the same offset");
      assert.equal(again.headers["idempotent-replayed"], "true");
    }
    // The same key for another event is not a retry: 422, nothing published.
    const reused = await svc.post(
      "/api/publish",
      worker,
      { channel, event: { type: "notification", n: 2 } },
      key,
    );
    assert.equal(reused.status, 422);
    assert.equal((reused.body as { code?: string }).code, "RT_ERR_IDEMPOTENCY_KEY_REUSED");
    assert.equal(reused.headers["idempotent-replayed"], undefined);
    // A marker after the retries: once it is on the stream, any duplicate would be too.
    const marker = await svc.post("/api/publish", worker, {
      channel,
      event: { type: "marker" },
    });
    assert.deepEqual(marker.body, { channel, offset: 2 }, "the retries took no offset");
    await stream.waitFor((e) => dataOf(e)?.type === "marker");
    assert.deepEqual(
      stream.events.map(dataOf).flatMap((d) => (d ? [d.type] : [])),
      ["notification", "marker"],
    );
    const metrics = await svc.service.app.inject({ url: "/metrics" });
    assert.match(metrics.body, /^realtime_publish_replays_total 2$/m);
    stream.close();
  });

  it("keys are per service and per channel; a request without a key is never a replay", async () => {
    const channel = "channel:idem_scope";
    const other = "channel:idem_scope_other";
    const key = { "idempotency-key": "job-42" };
    const post = (token: string, ch: string, headers?: Record<string, string>) =>
      svc.post("/api/publish", token, { channel: ch, event: { type: "x" } }, headers);
    const answers = [
      await post(worker, channel, key),
      await post(billing, channel, key), // another service, same key: its own publish
      await post(worker, other, key), // another channel, same key: its own publish
      await post(worker, channel),
      await post(worker, channel),
      await post(billing, channel, key), // billing's retry
    ];
    assert.deepEqual(
      answers.map((a) => [a.status, (a.body as { offset: number }).offset]),
      [
        [202, 1],
        [202, 2],
        [202, 1],
        [202, 3],
        [202, 4],
        [202, 2],
      ],
    );
    assert.deepEqual(
      answers.map((a) => a.headers["idempotent-replayed"] ?? "-"),
      ["-", "-", "-", "-", "-", "true"],
    );
  });

  it("400 RT_ERR_BAD_IDEMPOTENCY_KEY for a key outside the grammar; nothing is published", async () => {
    const channel = "channel:idem_bad";
    for (const bad of ["", "a b", "x".repeat(129), "caf\u00e9", "tab\there", "a, b"]) {
      const res = await svc.service.app.inject({
        method: "POST",
        url: "/api/publish",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${worker}`,
          "idempotency-key": bad,
        },
        payload: JSON.stringify({ channel, event: { type: "x" } }),
      });
      assert.equal(res.statusCode, 400, JSON.stringify(bad));
      assert.deepEqual(JSON.parse(res.body), {
        code: "RT_ERR_BAD_IDEMPOTENCY_KEY",
        message: "The Idempotency-Key header must be 1-128 visible ASCII characters",
      });
    }
    // The grammar's edges are accepted: 128 characters, and every visible ASCII character.
    for (const good of ["x".repeat(128), '!~"{}:/=+', "a"]) {
      const res = await svc.post(
        "/api/publish",
        worker,
        { channel, event: { type: "x" } },
        { "idempotency-key": good },
      );
      assert.equal(res.status, 202, good);
    }
    assert.equal((await svc.service.broker.position(channel)).offset, 3);
  });
});
