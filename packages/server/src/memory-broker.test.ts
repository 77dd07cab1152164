import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { collect, runBrokerContract, waitFor } from "./testing/index.ts";

runBrokerContract("MemoryBroker (two pods on one MemoryBus)", async () => {
  const bus = new MemoryBus();
  const a = new MemoryBroker({ bus });
  const b = new MemoryBroker({ bus });
  return {
    a,
    b,
    subscriberCount: async (channel) => bus.subscriberCount(channel),
    async teardown() {
      await Promise.all([a.close(), b.close()]);
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
