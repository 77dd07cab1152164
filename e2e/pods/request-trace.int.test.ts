/**
 * One message followed across pods: a chat message posted to pod A with an `X-Request-Id`
 * reaches a stream on pod B, and B's debug log names the delivery with the same id (and the
 * publish→delivery latency its histogram counted). A pod logging at info writes no delivery
 * lines at all: the trace costs nothing unless someone reads it.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { until } from "@realtime/testkit/http";
import { login, postJson } from "@realtime/testkit/load";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { StreamClient } from "@realtime/testkit/stream";

interface DeliveryLine {
  msg: string;
  component: string;
  reqId?: string;
  channel: string;
  offset: number;
  latencyMs: number;
  streams: number;
}

/** The pod's JSON log lines that record a delivery. */
function deliveries(pod: Pod): DeliveryLine[] {
  return pod
    .output()
    .split("\n")
    .flatMap((line) => {
      if (!line.startsWith("{")) return [];
      const record = JSON.parse(line) as DeliveryLine;
      return record.component === "delivery" ? [record] : [];
    });
}

async function scrape(pod: Pod): Promise<string> {
  const response = await fetch(`${pod.url}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

describe("a published event carries its request id to the pods that deliver it", () => {
  let redis: TestRedis;
  let a: Pod;
  let b: Pod;
  const streams: StreamClient[] = [];
  before(async () => {
    redis = await startRedis();
    [a, b] = (await withPods(2, (i) => ({
      REDIS_URL: redis.url,
      LOG_LEVEL: i === 0 ? "info" : "debug",
    }))) as [Pod, Pod];
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await stopPods([a, b]);
    await redis?.stop();
  });

  it("posted on A with X-Request-Id, delivered on A and B; B's debug log names the id", async () => {
    const channel = "channel:trace";
    const { token } = await login(a.url, "Tracer");
    const onA = new StreamClient(token, [channel]);
    const onB = new StreamClient(token, [channel]);
    streams.push(onA, onB);
    assert.equal(await onA.connect(a.url), 200);
    assert.equal(await onB.connect(b.url), 200);

    const requestId = `trace-${randomUUID()}`;
    const posted = await postJson(
      a.url,
      "/api/chat/messages",
      token,
      { channel, content: "followed" },
      { "x-request-id": requestId },
    );
    assert.equal(posted.status, 204, posted.body);
    assert.equal(posted.headers["x-request-id"], requestId);
    for (const stream of [onA, onB]) {
      await stream.until(
        () => stream.count(channel, "chat") === 1,
        5_000,
        () => "the message on both pods",
      );
    }
    const offset = onB.log.get(channel)?.events.find((e) => e.json.type === "chat")?.offset;

    await until(() => deliveries(b).some((line) => line.reqId === requestId), "B's delivery line");
    const line = deliveries(b).find((record) => record.reqId === requestId) as DeliveryLine;
    assert.equal(line.msg, "delivered");
    assert.equal(line.channel, channel);
    assert.equal(line.offset, offset);
    assert.equal(line.streams, 1);
    assert.ok(line.latencyMs >= 0 && line.latencyMs < 5_000, `latency ${line.latencyMs} ms`);

    // Both pods timed the delivery; only B (debug) wrote it down.
    for (const pod of [a, b]) {
      const text = await scrape(pod);
      const count = /^realtime_delivery_latency_seconds_count (\d+)/m.exec(text);
      assert.ok(count && Number(count[1]) >= 1, `${pod.url}: ${count?.[0]}`);
    }
    assert.deepEqual(deliveries(a), []);
    assert.ok(!a.output().includes('"msg":"delivered"'));
  });

  it("an id that is not a plain token is not carried: the event gets the pod's own", async () => {
    const channel = "channel:trace-forged";
    const { token } = await login(a.url, "Forger");
    const onB = new StreamClient(token, [channel]);
    streams.push(onB);
    assert.equal(await onB.connect(b.url), 200);
    const posted = await postJson(
      a.url,
      "/api/chat/messages",
      token,
      { channel, content: "forged" },
      { "x-request-id": 'x","msg":"forged' },
    );
    assert.equal(posted.status, 204, posted.body);
    const given = String(posted.headers["x-request-id"]);
    assert.notEqual(given, 'x","msg":"forged');
    await onB.until(
      () => onB.count(channel, "chat") === 1,
      5_000,
      () => "the message on B",
    );
    const offset = onB.log.get(channel)?.events.find((e) => e.json.type === "chat")?.offset;
    const ofMessage = (line: DeliveryLine) => line.channel === channel && line.offset === offset;
    await until(() => deliveries(b).some(ofMessage), "B's line");
    assert.equal(deliveries(b).find(ofMessage)?.reqId, given);
  });
});
