import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { noopMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { collect, runBrokerContract, waitFor } from "./testing/index.ts";

runBrokerContract("MemoryBroker (two pods on one MemoryBus)", async () => {
  const idleTtlMs = 1_000;
  const bus = new MemoryBus({ idleTtlMs, sweepIntervalMs: 100 });
  const a = new MemoryBroker({ bus });
  const b = new MemoryBroker({ bus });
  return {
    a,
    b,
    subscriberCount: async (channel) => bus.subscriberCount(channel),
    idleTtlMs,
    holds: async (channel) => bus.holds(channel),
    async teardown() {
      await Promise.all([a.close(), b.close()]);
      bus.close();
    },
  };
});

test("a new MemoryBus is a new epoch: the history of a restarted process is gone", async () => {
  const before = await new MemoryBroker().publish("channel:x", "{}");
  const after = await new MemoryBroker().publish("channel:x", "{}");
  assert.equal(after.offset, 1);
  assert.notEqual(after.epoch, before.epoch);
});

test("MemoryBroker delivers after publish returns, never inside it", async () => {
  const broker = new MemoryBroker();
  const received = collect(broker);
  await broker.subscribe("channel:x");
  const publishing = broker.publish("channel:x", "{}");
  assert.equal(received.length, 0);
  await publishing;
  await waitFor(() => received.length === 1, "delivered");
  await broker.close();
});

test("idempotency keys: bounded, the oldest forgotten first, expired ones swept", async () => {
  let now = 1_000;
  const bus = new MemoryBus({ now: () => now, maxIdempotencyKeys: 3 });
  const broker = new MemoryBroker({ bus });
  const x = "channel:x" as const;
  const publish = (key: string, windowMs = 10_000) =>
    broker.publish(x, "{}", { idempotencyKey: key, idempotencyWindowMs: windowMs });
  const { epoch } = await broker.position(x);
  for (const key of ["k1", "k2", "k3"]) assert.equal((await publish(key)).duplicate, false);
  assert.equal(bus.idempotencyKeyCount, 3);
  assert.equal((await publish("k4")).duplicate, false);
  assert.equal(bus.idempotencyKeyCount, 3, "never more than the bound");
  assert.deepEqual(
    await publish("k1"),
    { epoch, offset: 5, duplicate: false },
    "k1 was the oldest: forgotten",
  );
  for (const key of ["k3", "k4", "k1"]) assert.equal((await publish(key)).duplicate, true, key);

  // Past the window every key is gone, and the next insert sweeps them all.
  now += 10_000;
  assert.equal((await publish("k3")).duplicate, false, "a lookup honours the expiry itself");
  assert.equal(bus.idempotencyKeyCount, 1, "expired keys were swept");
  now += 9_999;
  assert.equal((await publish("k3")).duplicate, true, "the window is counted from the publish");
  await broker.close();
});

test("the publisher counts a replay as a replay, not as a published event", async () => {
  const counted: string[] = [];
  const metrics = {
    ...noopMetrics,
    eventPublished: () => counted.push("published"),
    publishReplayed: () => counted.push("replayed"),
    publishFailed: () => counted.push("failed"),
  };
  const publisher = new Publisher(new MemoryBroker(), { metrics });
  const first = await publisher.publish("channel:x", { type: "n" }, { idempotencyKey: "a" });
  const again = await publisher.publish("channel:x", { type: "n" }, { idempotencyKey: "a" });
  assert.deepEqual(again, { ...first, duplicate: true });
  await assert.rejects(
    publisher.publish("channel:x", { type: "n" }, { idempotencyKey: "" }),
    TypeError,
    "a bad key is the caller's error, not broker_unavailable",
  );
  assert.deepEqual(counted, ["published", "replayed"]);
});
