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
import { IdempotencyConflict } from "../broker.ts";

export interface BrokerPair {
  /** One pod. */
  readonly a: Broker;
  /** Another pod on the same backend. */
  readonly b: Broker;
  teardown(): Promise<void>;
  /** How many pods subscribe to `channel` on the backend (e.g. `PUBSUB NUMSUB`), if known. */
  subscriberCount?(channel: ChannelName): Promise<number>;
  /**
   * The idle TTL the brokers were made with, in ms (how long an unused channel keeps its
   * state): make it short, 1–3 s, so the suite can watch unused channels go.
   */
  readonly idleTtlMs: number;
  /** Whether the backend holds state for `channel`, looked at without counting as a use. */
  holds(channel: ChannelName): Promise<boolean>;
}

export interface WaitForOptions {
  /** Give up after this long, in ms. Default 5000. */
  timeoutMs?: number;
  /** Poll interval in ms. Default 5. */
  intervalMs?: number;
}

/** Polls `condition` until it holds; throws `message` after the deadline. Never a bare sleep. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  message: string,
  options: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 5_000);
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${message}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 5));
  }
}

/** Makes `broker` record every message it delivers. */
export function collect(broker: Broker): BrokerMessage[] {
  const received: BrokerMessage[] = [];
  broker.setListener((message) => received.push(message));
  return received;
}

/** Only the position of a publish result (without `duplicate`). */
const position = (p: StreamPosition): StreamPosition => ({ epoch: p.epoch, offset: p.offset });
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const offsets = (messages: readonly BrokerMessage[]) => messages.map((m) => m.offset);
const onChannel = (messages: readonly BrokerMessage[], channel: ChannelName) =>
  messages.filter((m) => m.channel === channel);

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

    it("publishes a repeated idempotency key once; the repeat gets the same position", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:idem_repeat";
        const received = collect(b);
        await b.subscribe(x);
        const first = await a.publish(x, '{"n":1}', { idempotencyKey: "order-1" });
        assert.deepEqual(first, { ...position(first), offset: 1, duplicate: false });
        // From the same pod and from another pod, with other data: nothing is published.
        const again = await a.publish(x, '{"n":2}', { idempotencyKey: "order-1" });
        const fromB = await b.publish(x, '{"n":3}', { idempotencyKey: "order-1" });
        assert.deepEqual(again, { ...position(first), duplicate: true });
        assert.deepEqual(fromB, { ...position(first), duplicate: true });
        assert.deepEqual(await b.position(x), position(first), "the channel did not move");
        await flush(a, b, received);
        assert.deepEqual(
          onChannel(received, x).map((m) => [m.offset, m.data]),
          [[1, '{"n":1}']],
          "one event, the first one's data",
        );
      }));

    it("refuses a repeated key with another fingerprint: a reuse, not a retry", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:idem_reuse";
        const key = (fingerprint: string) => ({
          idempotencyKey: "job-9",
          idempotencyFingerprint: fingerprint,
        });
        const first = await a.publish(x, '{"n":1}', key("aaaa"));
        assert.equal(first.duplicate, false);
        assert.deepEqual(await b.publish(x, '{"n":1}', key("aaaa")), {
          ...position(first),
          duplicate: true,
        });
        await assert.rejects(b.publish(x, '{"n":2}', key("bbbb")), IdempotencyConflict);
        await assert.rejects(a.publish(x, '{"n":2}', key("")), IdempotencyConflict);
        assert.deepEqual(await a.position(x), position(first), "nothing was published");
        await assert.rejects(
          a.publish(x, "{}", { idempotencyKey: "k", idempotencyFingerprint: "not:allowed" }),
          TypeError,
        );
      }));

    it("publishes different keys, and one key on different channels, separately", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:idem_keys";
        const y: ChannelName = "user:idem_keys";
        const received = collect(b);
        await Promise.all([b.subscribe(x), b.subscribe(y)]);
        const results = [
          await a.publish(x, "{}", { idempotencyKey: "k1" }),
          await a.publish(x, "{}", { idempotencyKey: "k2" }),
          await a.publish(x, "{}"),
          await b.publish(x, "{}", { idempotencyKey: "K1" }),
          await a.publish(y, "{}", { idempotencyKey: "k1" }),
        ];
        assert.deepEqual(
          results.map((r) => [r.offset, r.duplicate]),
          [
            [1, false],
            [2, false],
            [3, false],
            [4, false],
            [1, false],
          ],
          "keys are case-sensitive and per channel",
        );
        // Keys hold any characters, braces and colons too (Redis: still the channel's slot).
        const odd = "{x}:y 🎉";
        assert.equal((await a.publish(x, "{}", { idempotencyKey: odd })).offset, 5);
        assert.equal((await b.publish(x, "{}", { idempotencyKey: odd })).duplicate, true);
        await waitFor(
          () => onChannel(received, x).length >= 5 && onChannel(received, y).length >= 1,
          "every distinct publish delivered",
        );
        await flush(a, b, received);
        assert.deepEqual(offsets(onChannel(received, x)), range(5));
        assert.deepEqual(offsets(onChannel(received, y)), [1]);
      }));

    it("forgets a key after its window: the next publish with it is published", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:idem_expiry";
        const received = collect(b);
        await b.subscribe(x);
        const options = { idempotencyKey: "short", idempotencyWindowMs: 300 };
        // Taken before the key is sent: its window runs from a moment after this. (Taken after
        // two round trips, a loaded machine's slow answers ate into the window and the floor
        // below failed.)
        const started = Date.now();
        const first = await a.publish(x, '{"n":1}', options);
        assert.equal((await b.publish(x, '{"n":1}', options)).duplicate, true, "within window");
        // Retry like a client would until the key is gone: every try before that is a
        // duplicate (and does not extend the window), the first try after publishes.
        let last = first;
        await waitFor(
          async () => {
            last = await a.publish(x, '{"n":2}', options);
            if (last.duplicate) assert.deepEqual(position(last), position(first));
            return !last.duplicate;
          },
          "the key expired",
          { intervalMs: 20 },
        );
        assert.ok(Date.now() - started >= 300, "not forgotten before its window");
        assert.deepEqual(last, { epoch: first.epoch, offset: 2, duplicate: false });
        // The new publish is remembered in turn.
        assert.equal((await b.publish(x, "{}", options)).offset, 2);
        await flush(a, b, received);
        assert.deepEqual(
          onChannel(received, x).map((m) => [m.offset, m.data]),
          [
            [1, '{"n":1}'],
            [2, '{"n":2}'],
          ],
        );
      }));

    it("publishes exactly once when two pods race with one key", () =>
      withPair(async ({ a, b }) => {
        const x: ChannelName = "channel:idem_race";
        const received = collect(a);
        await a.subscribe(x);
        for (let round = 0; round < 5; round++) {
          const key = `race-${round}`;
          const all: PublishResult[] = await Promise.all(
            range(20).map((i) => (i % 2 ? a : b).publish(x, `{"i":${i}}`, { idempotencyKey: key })),
          );
          assert.equal(all.filter((r) => !r.duplicate).length, 1, `${key}: one publish won`);
          assert.equal(new Set(all.map((r) => `${r.epoch}:${r.offset}`)).size, 1, key);
          assert.equal(all[0]?.offset, round + 1, `${key}: the next offset`);
        }
        await flush(b, a, received);
        assert.deepEqual(offsets(onChannel(received, x)), range(5), "one event per key");
      }));

    it("rejects an empty or over-long idempotency key and a bad window, publishing nothing", () =>
      withPair(async ({ a }) => {
        const x: ChannelName = "channel:idem_bad";
        for (const options of [
          { idempotencyKey: "" },
          { idempotencyKey: "k".repeat(257) },
          { idempotencyKey: "k", idempotencyWindowMs: 0 },
          { idempotencyKey: "k", idempotencyWindowMs: 1.5 },
        ]) {
          await assert.rejects(a.publish(x, "{}", options), TypeError, JSON.stringify(options));
        }
        assert.equal((await a.position(x)).offset, 0);
        assert.equal((await a.publish(x, "{}", { idempotencyKey: "k".repeat(256) })).offset, 1);
      }));

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
