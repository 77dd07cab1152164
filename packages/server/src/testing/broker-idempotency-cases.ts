/**
 * The idempotency part of the broker contract (see `broker-contract.ts`): a publish with an
 * idempotency key is published once within its window, however it is retried or raced.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { IdempotencyConflict, type PublishResult } from "../broker.ts";
import {
  collect,
  type Flush,
  offsets,
  onChannel,
  position,
  range,
  type WithPair,
  waitFor,
} from "./broker-testing.ts";

export function runIdempotencyCases(withPair: WithPair, flush: Flush): void {
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
}
