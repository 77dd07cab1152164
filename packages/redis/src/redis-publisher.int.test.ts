/** A standalone publisher (no hub) reaches a pod's SSE streams through a real Redis. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { Hub } from "@realtime/server";
import { dataEvents, FakeConnection, waitFor } from "@realtime/server/testing";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { RedisBroker } from "./redis-broker.ts";
import { createRedisPublisher } from "./redis-publisher.ts";

describe("createRedisPublisher", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  it("puts events on the Redis path: a pod's streams receive them, in order, with positions", async () => {
    const prefix = `p_${randomBytes(4).toString("hex")}`;
    const broker = new RedisBroker({ url: redis.url, prefix });
    await broker.waitUntilReady();
    const hub = new Hub({ broker, history: broker, positionCheckIntervalMs: 0 });
    const publisher = createRedisPublisher({ url: redis.url, prefix });
    try {
      const connection = new FakeConnection();
      await hub.open({
        userId: "u_9",
        channels: ["user:u_9" as ChannelName],
        connect: () => connection,
      });
      const positions = [];
      for (let i = 1; i <= 5; i++) {
        positions.push(
          await publisher.sendToUser("u_9", { type: "report_ready", reportId: `r${i}` }),
        );
      }
      assert.deepEqual(
        positions.map((p) => p.offset),
        [1, 2, 3, 4, 5],
      );
      await waitFor(() => dataEvents(connection.text).length === 5, "five events on the stream");
      const events = dataEvents(connection.text);
      assert.deepEqual(
        events.map((e) => [e.type, e.channel, e.reportId]),
        [1, 2, 3, 4, 5].map((i) => ["report_ready", "user:u_9", `r${i}`]),
      );
      assert.match(String(events[0]?.timestamp), /^\d{4}-\d\d-\d\dT/);
    } finally {
      await publisher.close();
      await hub.close();
      await broker.close();
    }
  });

  it("a retry with an idempotency key publishes once, also from another process", async () => {
    const prefix = `p_${randomBytes(4).toString("hex")}`;
    const first = createRedisPublisher({ url: redis.url, prefix });
    const second = createRedisPublisher({ url: redis.url, prefix });
    try {
      const event = { type: "report_ready", reportId: "r1" };
      const options = { idempotencyKey: "report-r1" };
      const one = await first.sendToUser("u_7", event, options);
      const two = await second.sendToUser("u_7", event, options);
      assert.deepEqual(one, { epoch: one.epoch, offset: 1, duplicate: false });
      assert.deepEqual(two, { ...one, duplicate: true });
      assert.equal((await first.sendToUser("u_7", event)).offset, 2, "nothing was published");
      await assert.rejects(first.sendToUser("u_7", event, { idempotencyKey: "" }), TypeError);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it("refuses a bad channel or event before touching Redis", async () => {
    const publisher = createRedisPublisher({ url: redis.url, prefix: "p_refuse" });
    try {
      await assert.rejects(publisher.publish("room:x" as ChannelName, { type: "x" }), TypeError);
      await assert.rejects(publisher.sendToUser("u_1", { type: "reset" }), TypeError);
    } finally {
      await publisher.close();
    }
  });
});
