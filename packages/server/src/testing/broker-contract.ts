/**
 * The contract every {@link Broker} implementation must meet, as one shared suite (the Hono
 * `runTest({ newRouter })` pattern): `MemoryBroker` runs it in `memory-broker.test.ts`,
 * `RedisBroker` against a single Redis and a Redis Cluster in `@realtime/redis`.
 *
 * `setup` returns two brokers ("pods") on one backend; each case makes a fresh pair and tears
 * it down, even when the case fails.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { Broker, BrokerMessage, PublishResult } from "../broker.ts";
import { runIdempotencyCases } from "./broker-idempotency-cases.ts";
import {
  type BrokerPair,
  collect,
  offsets,
  onChannel,
  position,
  range,
  waitFor,
} from "./broker-testing.ts";

export { type BrokerPair, collect, type WaitForOptions, waitFor } from "./broker-testing.ts";

export function runBrokerContract(name: string, setup: () => Promise<BrokerPair>): void {
  /** Runs `body` with a fresh pair of pods and always tears them down. */
  const withPair = async (body: (pair: BrokerPair) => Promise<void>) => {
    const pair = await setup();
    try {
      await body(pair);
    } finally {
      await pair.teardown();
    }
  };

  /**
   * Proves that everything `pod` would have received before now has arrived: publish a marker
   * on a channel it subscribes to and wait for it. (Brokers deliver in publish order per pod.)
   */
  const flush = async (publisher: Broker, pod: Broker, received: BrokerMessage[]) => {
    const marker: ChannelName = "channel:contract_marker";
    await pod.subscribe(marker);
    const { offset } = await publisher.publish(marker, '{"marker":true}');
    await waitFor(
      () => received.some((m) => m.channel === marker && m.offset === offset),
      "marker delivered",
    );
  };

  describe(`Broker contract: ${name}`, () => {
    it("assigns positions 1..N per channel, independently for each channel", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:positions_x";
        const y: ChannelName = "user:positions_y";
        const got: PublishResult[] = [];
        for (let i = 0; i < 5; i++) got.push(await a.publish(x, `{"i":${i}}`));
        const fromB = await b.publish(x, "{}");
        const onY = await b.publish(y, "{}");
        assert.deepEqual(
          got.map((p) => p.offset),
          range(5),
        );
        assert.equal(new Set(got.map((p) => p.epoch)).size, 1, "one epoch per channel");
        assert.deepEqual(fromB, { epoch: got[0]?.epoch, offset: 6, duplicate: false });
        assert.ok(
          got.every((p) => p.duplicate === false),
          "a publish without a key is never one",
        );
        assert.equal(onY.offset, 1, "another channel counts on its own");
        assert.deepEqual(await b.position(x), position(fromB));
        assert.deepEqual(await a.position(y), position(onY));
      }));

    it("never hands out one position twice under concurrent publishes from two pods", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:concurrent_positions";
        const all = await Promise.all(range(200).map((i) => (i % 2 ? a : b).publish(x, "{}")));
        assert.deepEqual(
          all.map((p) => p.offset).sort((p, q) => p - q),
          range(200),
        );
      }));

    it("position() of an unused channel is 0, and the first publish gets 1 in that epoch", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:fresh";
        const before = await a.position(x);
        assert.equal(before.offset, 0);
        assert.equal(typeof before.epoch, "string");
        assert.ok(before.epoch.length > 0, "an epoch even before the first publish");
        assert.deepEqual(await b.position(x), before, "every pod sees the same epoch");
        const first = await b.publish(x, "{}");
        assert.deepEqual(first, { epoch: before.epoch, offset: 1, duplicate: false });
      }));

    it("releases a channel nobody uses one idle TTL after its last publish; it restarts in a new epoch", () =>
      withPair(async ({ a, b, idleTtlMs, holds }) => {
        const x: ChannelName = "channel:idle_published";
        const first = await a.publish(x, "{}");
        // Taken before the last use is sent: the TTL runs from a moment after this, so the
        // channel may not go before usedAt + TTL however long the answer takes to come back.
        // (Taken after the answer, a slow answer ate into the TTL and the floor failed.)
        const usedAt = Date.now();
        await a.publish(x, "{}");
        assert.equal(await holds(x), true);
        // Polling `holds` does not count as a use; the wait is the TTL itself, bounded.
        await waitFor(async () => !(await holds(x)), "the unused channel was released", {
          timeoutMs: idleTtlMs * 3 + 2_000,
          intervalMs: 50,
        });
        assert.ok(Date.now() - usedAt >= idleTtlMs, "not before its idle TTL");
        const again = await b.publish(x, "{}");
        assert.equal(again.offset, 1);
        assert.notEqual(
          again.epoch,
          first.epoch,
          "a cursor of the old epoch is reset, never matched",
        );
      }));

    it("a position read of an unused channel leaves nothing behind past the idle TTL", () =>
      withPair(async ({ a, idleTtlMs, holds }) => {
        const x: ChannelName = "channel:idle_read";
        const seen = await a.position(x);
        await waitFor(async () => !(await holds(x)), "the read-only channel was released", {
          timeoutMs: idleTtlMs * 3 + 2_000,
          intervalMs: 50,
        });
        assert.notEqual((await a.position(x)).epoch, seen.epoch);
      }));

    it("position reads keep a channel: read every quarter TTL, it outlives two TTLs", () =>
      withPair(async ({ a, b, idleTtlMs, holds }) => {
        const x: ChannelName = "channel:idle_kept";
        const first = await a.publish(x, "{}");
        const until = Date.now() + 2 * idleTtlMs;
        while (Date.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, idleTtlMs / 4));
          assert.deepEqual(await b.position(x), position(first), "still the same epoch and top");
        }
        assert.equal(await holds(x), true);
      }));

    it("delivers to a subscribed pod every event once, in order, with data unchanged", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:ordered";
        const received = collect(b);
        await b.subscribe(x);
        const data = (i: number) => JSON.stringify({ i, text: 'a:b:c ü 🎉 \n"' });
        const published: StreamPosition[] = [];
        for (const i of range(1000)) published.push(await a.publish(x, data(i)));
        await waitFor(() => received.length >= 1000, "1000 events delivered");
        assert.deepEqual(offsets(received), range(1000));
        assert.deepEqual(
          received.map((m) => m.data),
          range(1000).map(data),
        );
        assert.ok(received.every((m) => m.channel === x && m.epoch === published[0]?.epoch));
        await flush(a, b, received);
        assert.equal(onChannel(received, x).length, 1000, "no duplicates");
      }));

    it("delivers concurrent publishes in offset order", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:concurrent_order";
        const received = collect(b);
        await b.subscribe(x);
        const positions = await Promise.all(range(1000).map((i) => a.publish(x, `{"i":${i}}`)));
        assert.deepEqual(
          positions.map((p) => p.offset).sort((p, q) => p - q),
          range(1000),
        );
        await waitFor(() => received.length >= 1000, "1000 events delivered");
        assert.deepEqual(offsets(received), range(1000));
        // The data travelled with the position it was given.
        const byOffset = new Map(positions.map((p, i) => [p.offset, `{"i":${i + 1}}`]));
        assert.ok(received.every((m) => byOffset.get(m.offset) === m.data));
      }));

    it("delivers to the publishing pod too, and to every subscribed pod", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "user:both_pods";
        const onA = collect(a);
        const onB = collect(b);
        await Promise.all([a.subscribe(x), b.subscribe(x)]);
        for (let i = 0; i < 10; i++) await a.publish(x, "{}");
        await waitFor(() => onA.length >= 10 && onB.length >= 10, "both pods got 10");
        assert.deepEqual(offsets(onA), range(10));
        assert.deepEqual(offsets(onB), range(10));
      }));

    it("delivers nothing to a pod that did not subscribe", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:only_b";
        const onA = collect(a);
        const onB = collect(b);
        await b.subscribe(x);
        for (let i = 0; i < 20; i++) await a.publish(x, "{}");
        await b.publish("channel:not_subscribed_by_anyone", "{}");
        await waitFor(() => onB.length >= 20, "b got 20");
        await flush(b, a, onA);
        assert.deepEqual(onChannel(onA, x), []);
        assert.equal(onB.length, 20);
      }));

    it("stops delivery after unsubscribe", () =>
      withPair(async ({ a, b, subscriberCount }) => {
        const x: ChannelName = "channel:unsubscribed";
        const received = collect(b);
        await b.subscribe(x);
        await a.publish(x, "{}");
        await waitFor(() => received.length === 1, "first event delivered");
        await b.unsubscribe(x);
        if (subscriberCount) {
          await waitFor(async () => (await subscriberCount(x)) === 0, "no subscriber left");
        }
        await a.publish(x, "{}");
        await flush(a, b, received);
        assert.deepEqual(offsets(onChannel(received, x)), [1]);
        await b.subscribe(x);
        const third = await a.publish(x, "{}");
        await waitFor(() => onChannel(received, x).length === 2, "delivered after resubscribe");
        assert.equal(onChannel(received, x)[1]?.offset, third.offset);
      }));

    it("treats repeated subscribe and unsubscribe as one", () =>
      withPair(async ({ a, b, subscriberCount }) => {
        const x: ChannelName = "channel:idempotent";
        const received = collect(b);
        await Promise.all([b.subscribe(x), b.subscribe(x)]);
        await b.subscribe(x);
        if (subscriberCount) assert.equal(await subscriberCount(x), 1);
        await a.publish(x, "{}");
        await flush(a, b, received);
        assert.deepEqual(offsets(onChannel(received, x)), [1], "delivered once");
        await Promise.all([b.unsubscribe(x), b.unsubscribe(x)]);
        await b.unsubscribe(x);
        await a.unsubscribe(x); // never subscribed: a no-op
        if (subscriberCount) {
          await waitFor(async () => (await subscriberCount(x)) === 0, "no subscriber left");
        }
        await b.subscribe(x);
        await a.publish(x, "{}");
        await waitFor(() => onChannel(received, x).length === 2, "delivered after resubscribe");
        assert.deepEqual(offsets(onChannel(received, x)), [1, 2]);
      }));

    it("counts subscribing pods and drops to 0 after the last unsubscribe", async (t) => {
      const pair = await setup();
      try {
        const { a, b, subscriberCount } = pair;
        if (!subscriberCount) {
          t.skip("the backend cannot count subscribers");
          return;
        }
        const x: ChannelName = "user:counted";
        assert.equal(await subscriberCount(x), 0);
        await a.subscribe(x);
        await b.subscribe(x);
        await waitFor(async () => (await subscriberCount(x)) === 2, "two pods subscribed");
        await a.unsubscribe(x);
        await waitFor(async () => (await subscriberCount(x)) === 1, "one pod left");
        await b.unsubscribe(x);
        await waitFor(async () => (await subscriberCount(x)) === 0, "no pod left");
      } finally {
        await pair.teardown();
      }
    });

    it("a live message carries when it was published and by which request", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:traced";
        const received = collect(b);
        await b.subscribe(x);
        const before = Date.now();
        await a.publish(x, '{"n":1}', { requestId: "lb:7f3a-0042.b_C" });
        await a.publish(x, '{"n":2}');
        const after = Date.now();
        await waitFor(() => received.length >= 2, "2 events delivered");
        const [traced, plain] = received as [BrokerMessage, BrokerMessage];
        assert.equal(traced.requestId, "lb:7f3a-0042.b_C");
        assert.equal(plain.requestId, undefined);
        for (const m of [traced, plain]) {
          const at = m.publishedAt ?? Number.NaN;
          assert.ok(at >= before && at <= after, `published at ${at}, in [${before}, ${after}]`);
        }
      }));

    it("refuses a request id that is not a plain token, and publishes nothing", () =>
      withPair(async ({ a }) => {
        const x: ChannelName = "channel:bad_request_id";
        for (const requestId of ["", "a b", "x".repeat(129), 'a"b', "a;b", "a\nb", "ü"]) {
          await assert.rejects(a.publish(x, "{}", { requestId }), TypeError, requestId);
        }
        assert.equal((await a.position(x)).offset, 0);
      }));

    runIdempotencyCases(withPair, flush);

    it("rejects publish and subscribe on a closed broker", () =>
      withPair(async ({ a, b }) => {
        await a.close();
        await assert.rejects(a.publish("channel:closed", "{}"));
        await assert.rejects(a.subscribe("channel:closed"));
        assert.equal(a.ready(), false);
        assert.equal((await b.publish("channel:closed", "{}")).offset, 1, "other pods go on");
      }));
  });
}
