import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import fc from "fast-check";
import { ChannelCapacityError } from "./broker.ts";
import { ChannelTable, type ChannelTableOptions } from "./channel-table.ts";

const MINUTE = 60_000;
/** What the table counts for an event beside its JSON, and for a channel's history array. */
const EVENT = 192;
const ARRAY = 192;

function table(options: Partial<ChannelTableOptions> = {}) {
  const clock = { now: 1_000_000 };
  const channels = new ChannelTable<string>("e-", {
    retention: { size: 100, ttlMs: 5 * MINUTE },
    idleTtlMs: 10 * MINUTE,
    ...options,
    now: () => clock.now,
  });
  const publish = (channel: ChannelName, data = "{}") => {
    const record = channels.use(channel);
    const offset = ++record.offset;
    channels.retain(record, { channel, epoch: record.epoch, offset, data });
    return { epoch: record.epoch, offset };
  };
  return { channels, clock, publish };
}

const room = (i: number) => `channel:r${i}` as ChannelName;

describe("ChannelTable: unused channels are released", () => {
  it("on the sweep, without any read: history after its age, the channel after the idle TTL", () => {
    const { channels, clock, publish } = table();
    const first = publish(room(1));
    publish(room(1));
    clock.now += 5 * MINUTE + 1;
    channels.sweep();
    assert.deepEqual(channels.stats, { channels: 1, historyEvents: 0, historyBytes: 0 });
    clock.now += 5 * MINUTE;
    channels.sweep();
    assert.equal(channels.has(room(1)), false, "idle for 10 minutes, no history: released");
    assert.deepEqual(channels.stats, { channels: 0, historyEvents: 0, historyBytes: 0 });
    // It comes back in a new epoch: a cursor of the old one is reset, never replayed from here.
    const again = publish(room(1));
    assert.equal(again.offset, 1);
    assert.notEqual(again.epoch, first.epoch);
  });

  it("a read keeps it, a subscriber keeps it, and the idle time counts from the last leave", () => {
    const { channels, clock } = table();
    const epoch = channels.use(room(1)).epoch;
    clock.now += 9 * MINUTE;
    channels.use(room(1)); // a position read
    clock.now += 9 * MINUTE;
    channels.sweep();
    assert.equal(channels.use(room(1)).epoch, epoch, "read 9 minutes ago: kept");
    channels.join(room(1), "pod-a");
    clock.now += 60 * MINUTE;
    channels.sweep();
    assert.equal(channels.has(room(1)), true, "subscribed for an hour: kept");
    channels.leave(room(1), "pod-a");
    clock.now += 10 * MINUTE - 1;
    channels.sweep();
    assert.equal(channels.has(room(1)), true, "left 10 minutes ago less 1 ms: kept");
    clock.now += 1;
    channels.sweep();
    assert.equal(channels.has(room(1)), false);
  });

  it("a channel used all the time does not hold up the release of the others behind it", () => {
    const { channels, clock, publish } = table();
    channels.join(room(1), "pod-a");
    publish(room(2));
    // Room 1 is read every 300 ms (a pod's position check) for 11 minutes.
    for (let t = 0; t < 11 * MINUTE; t += 300) {
      clock.now += 300;
      channels.use(room(1));
      channels.sweep();
    }
    assert.equal(channels.has(room(2)), false, "room 2, unused for 11 minutes, went");
    assert.equal(channels.has(room(1)), true);
  });

  it("reading history is not a use: a channel that is only read still goes", () => {
    const { channels, clock, publish } = table();
    publish(room(1));
    for (let i = 0; i < 10; i++) {
      clock.now += 2 * MINUTE;
      channels.read(room(1), 0, 10);
      channels.sweep();
    }
    assert.equal(channels.has(room(1)), false);
    assert.deepEqual(channels.read(room(1), 0, 10), { epoch: "", top: 0, messages: [] });
    assert.equal(channels.has(room(1)), false, "reading a missing channel creates nothing");
  });
});

describe("ChannelTable: the totals are capped", () => {
  it("history bytes: the channels published least recently lose their oldest events first", () => {
    const data = JSON.stringify({ type: "n", pad: "x".repeat(800) });
    // What one event and one channel's history cost, as counted (JSON plus overhead).
    const probe = table();
    probe.publish(room(0), data);
    const first = probe.channels.stats.historyBytes;
    probe.publish(room(0), data);
    const event = probe.channels.stats.historyBytes - first;
    const array = first - event;
    assert.ok(event > data.length && array > 0, "overhead is counted");
    const cap = 2 * array + 10 * event;
    const { channels, publish } = table({ maxHistoryBytes: cap });
    for (let i = 0; i < 6; i++) publish(room(1), data);
    for (let i = 0; i < 6; i++) publish(room(2), data);
    assert.equal(channels.stats.historyBytes, cap);
    assert.deepEqual(
      channels.read(room(1), 0, 100).messages.map((m) => m.offset),
      [3, 4, 5, 6],
      "room 1, published least recently, lost its two oldest",
    );
    assert.deepEqual(
      channels.read(room(2), 0, 100).messages.map((m) => m.offset),
      [1, 2, 3, 4, 5, 6],
    );
    for (let i = 0; i < 100; i++) publish(room(3 + (i % 7)), data);
    assert.ok(channels.stats.historyBytes <= cap, "never above the cap");
  });

  it("channels: the least recently used one without subscribers goes; if all have one, refused", () => {
    const { channels, clock, publish } = table({ maxChannels: 3 });
    publish(room(1));
    channels.join(room(2), "pod-a");
    clock.now += 2_000;
    publish(room(3));
    clock.now += 2_000;
    channels.use(room(1)); // used again: now the most recent
    clock.now += 2_000;
    publish(room(4));
    assert.equal(channels.has(room(3)), false, "room 3 was the least recently used, unsubscribed");
    assert.deepEqual(
      [1, 2, 4].map((i) => channels.has(room(i))),
      [true, true, true],
    );
    assert.equal(channels.stats.historyEvents, 2, "room 3's history went with it");
    channels.join(room(1), "pod-a");
    channels.join(room(4), "pod-a");
    assert.throws(() => channels.use(room(5)), ChannelCapacityError);
    assert.equal(channels.stats.channels, 3);
  });

  it("history bytes: text outside Latin-1 counts two bytes a character, as V8 keeps it", () => {
    const latin = JSON.stringify({ type: "n", content: "é".repeat(500) });
    const wide = JSON.stringify({ type: "n", content: "€".repeat(500) });
    assert.equal(latin.length, wide.length);
    const a = table();
    a.publish(room(1), latin);
    const b = table();
    b.publish(room(1), wide);
    assert.equal(b.channels.stats.historyBytes - a.channels.stats.historyBytes, wide.length);
  });

  it("channels: however many subscribed channels there are, a new one releases one without", () => {
    const { channels, clock } = table({ maxChannels: 2_000 });
    // A busy pod: 1,500 rooms with streams, read by its position checks, then 500 only looked at.
    for (let i = 0; i < 1_500; i++) channels.join(room(i), "pod-a");
    clock.now += 2_000;
    for (let i = 0; i < 1_500; i++) channels.use(room(i));
    for (let i = 1_500; i < 2_000; i++) channels.use(room(i));
    assert.doesNotThrow(() => channels.use(room(9_999)));
    assert.equal(channels.has(room(1_500)), false, "the least recently used unsubscribed one went");
    assert.equal(channels.stats.channels, 2_000);
  });

  it("property: the totals always equal what a reader can see, and never pass the caps", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            op: fc.constantFrom("publish", "read", "subscribe", "leave", "tick", "sweep"),
            channel: fc.integer({ min: 0, max: 9 }),
            size: fc.integer({ min: 0, max: 400 }),
            ms: fc.integer({ min: 0, max: 4 * MINUTE }),
          }),
          { maxLength: 200 },
        ),
        (ops) => {
          const maxHistoryBytes = 4_000;
          const { channels, clock, publish } = table({
            maxChannels: 5,
            maxHistoryBytes,
            retention: { size: 7, ttlMs: 5 * MINUTE },
          });
          for (const { op, channel, size, ms } of ops) {
            const name = room(channel);
            try {
              if (op === "publish") publish(name, "y".repeat(size));
              else if (op === "read") channels.use(name);
              else if (op === "subscribe") channels.join(name, "pod");
              else if (op === "leave") channels.leave(name, "pod");
              else if (op === "tick") clock.now += ms;
              else channels.sweep();
            } catch (error) {
              if (!(error instanceof ChannelCapacityError)) throw error;
            }
            let events = 0;
            let bytes = 0;
            let held = 0;
            let retaining = 0;
            for (let i = 0; i < 10; i++) {
              if (!channels.has(room(i))) continue;
              held++;
              const page = channels.read(room(i), 0, 1_000);
              const offsets = page.messages.map((m) => m.offset);
              // Retained events are the newest ones, contiguous up to the top.
              assert.deepEqual(
                offsets,
                offsets.map((_, k) => page.top - offsets.length + 1 + k),
              );
              assert.ok(offsets.length <= 7);
              events += offsets.length;
              if (offsets.length > 0) retaining++;
              for (const m of page.messages) bytes += m.data.length;
            }
            // `read` expires by age as it goes, so compare after every channel was read. The
            // bytes: the JSON, one overhead per event and one per channel that retains any.
            assert.deepEqual(channels.stats, {
              channels: held,
              historyEvents: events,
              historyBytes: bytes + events * EVENT + retaining * ARRAY,
            });
            assert.ok(channels.stats.historyBytes <= maxHistoryBytes);
            assert.ok(held <= 5);
          }
        },
      ),
      { seed: 20261203, numRuns: 300 },
    );
  });
});
