/**
 * The contract every {@link HistoryStore} implementation must meet, as one shared suite: the
 * memory broker runs it in `memory-history.test.ts`, the Redis broker against a single Redis
 * and a Cluster in `@realtime/redis`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import type { Broker } from "../broker.ts";
import type { HistoryStore } from "../history-store.ts";

export interface HistoryFixture {
  readonly store: Broker & HistoryStore;
  /** Events the store keeps per channel (it may keep somewhat more, never fewer). */
  readonly size: number;
  teardown(): Promise<void>;
  /** Loses all history, as a restart without persistence would. Optional. */
  wipe?(): Promise<void>;
}

const offsets = (page: { messages: readonly { offset: number }[] }) =>
  page.messages.map((m) => m.offset);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function runHistoryContract(
  name: string,
  setup: () => Promise<HistoryFixture>,
  options: { canWipe?: boolean } = {},
): void {
  const withFixture = async (body: (f: HistoryFixture) => Promise<void>) => {
    const fixture = await setup();
    try {
      await body(fixture);
    } finally {
      await fixture.teardown();
    }
  };
  let n = 0;
  const channel = () => `channel:history_${process.pid}_${n++}` as ChannelName;

  describe(`${name}: HistoryStore contract`, () => {
    it("reads nothing for a channel never published", () =>
      withFixture(async ({ store }) => {
        const page = await store.read(channel(), 0, 10);
        assert.equal(page.top, 0);
        assert.deepEqual(page.messages, []);
      }));

    it("returns the events after an offset, ascending, with the epoch and top", () =>
      withFixture(async ({ store }) => {
        const ch = channel();
        let epoch = "";
        for (let i = 1; i <= 10; i++) {
          epoch = (await store.publish(ch, JSON.stringify({ type: "n", i }))).epoch;
        }
        const page = await store.read(ch, 3, 100);
        assert.equal(page.epoch, epoch);
        assert.equal(page.top, 10);
        assert.deepEqual(offsets(page), range(4, 10));
        assert.deepEqual(
          page.messages.map((m) => JSON.parse(m.data).i),
          range(4, 10),
        );
        for (const m of page.messages) {
          assert.equal(m.channel, ch);
          assert.equal(m.epoch, epoch);
        }
      }));

    it("honours the limit and returns nothing after the top", () =>
      withFixture(async ({ store }) => {
        const ch = channel();
        for (let i = 1; i <= 5; i++) await store.publish(ch, "{}");
        assert.deepEqual(offsets(await store.read(ch, 0, 3)), [1, 2, 3]);
        assert.deepEqual(offsets(await store.read(ch, 5, 3)), []);
      }));

    it("keeps channels apart", () =>
      withFixture(async ({ store }) => {
        const [a, b] = [channel(), channel()];
        await store.publish(a, '{"c":"a"}');
        await store.publish(b, '{"c":"b"}');
        await store.publish(b, '{"c":"b"}');
        assert.deepEqual(offsets(await store.read(a, 0, 10)), [1]);
        assert.deepEqual(offsets(await store.read(b, 0, 10)), [1, 2]);
      }));

    it("trims old events but keeps the newest contiguous up to the top", () =>
      withFixture(async ({ store, size }) => {
        const ch = channel();
        const total = size * 3 + 250;
        await Promise.all(Array.from({ length: total }, () => store.publish(ch, "{}")));
        const page = await store.read(ch, 0, total + 10);
        const got = offsets(page);
        assert.equal(page.top, total);
        assert.ok(got.length >= size, `kept ${got.length}, wanted at least ${size}`);
        assert.ok((got[0] ?? 0) > 1, "the oldest were trimmed");
        assert.deepEqual(got, range(got[0] ?? 0, total), "what is kept is contiguous");
      }));

    // Registered only for stores that can lose their history on purpose (not a skip).
    if (!options.canWipe) return;
    it("comes back under a new epoch after the history was lost", async () => {
      const fixture = await setup();
      try {
        const wipe = fixture.wipe;
        assert.ok(wipe, "a fixture declared canWipe must provide wipe()");
        const ch = channel();
        const before = await fixture.store.publish(ch, "{}");
        await wipe();
        const after = await fixture.store.publish(ch, "{}");
        assert.notEqual(after.epoch, before.epoch);
        assert.equal(after.offset, 1);
        const page = await fixture.store.read(ch, 0, 10);
        assert.equal(page.epoch, after.epoch);
        assert.deepEqual(offsets(page), [1]);
      } finally {
        await fixture.teardown();
      }
    });
  });
}
