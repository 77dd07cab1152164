/**
 * Streams of one channel that open or resume at once share the broker's position read and
 * their history reads (`shared-reads.ts`) — and each still gets exactly what it missed, once
 * and in order, however the reads were shared.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { HistoryPage, HistoryStore } from "./history-store.ts";
import { Hub } from "./hub.ts";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { FakeConnection } from "./testing/fake-connection.ts";
import { controlEvents, dataEvents, lastIdOf } from "./testing/parse-sse.ts";

const A = "channel:a" as ChannelName;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The memory broker, counting position reads. */
class CountingBroker extends MemoryBroker {
  positions = 0;
  override async position(channel: ChannelName): Promise<StreamPosition> {
    this.positions++;
    return super.position(channel);
  }
}

/** Counts history reads; each answers a turn of the event loop later, as a round trip would. */
class CountingHistory implements HistoryStore {
  readonly reads: { after: number; limit: number }[] = [];
  readonly #inner: HistoryStore;
  constructor(inner: HistoryStore) {
    this.#inner = inner;
  }
  async read(channel: ChannelName, after: number, limit: number): Promise<HistoryPage> {
    this.reads.push({ after, limit });
    const page = await this.#inner.read(channel, after, limit);
    await settle();
    return page;
  }
}

function setup() {
  const bus = new MemoryBus({ retention: { size: 10_000 }, sweepIntervalMs: 0 });
  const broker = new CountingBroker({ bus });
  const history = new CountingHistory(broker);
  // Replays of one user are not limited to 2 at a time here: these streams stand for many users.
  const hub = new Hub({
    broker,
    history,
    positionCheckIntervalMs: 0,
    replayPageSize: 4,
    maxReplaysPerUser: 100,
  });
  const publish = async (from: number, to: number) => {
    for (let n = from; n <= to; n++) await hub.publish(A, { type: "n", progress: n });
  };
  const cursorNow = async () => {
    const c = new FakeConnection();
    await hub.open({ userId: "u_cursor", channels: [A], connect: () => c });
    c.hangUp();
    return lastIdOf(c.text);
  };
  const open = (cursor?: string) => {
    const connection = new FakeConnection();
    const live = hub.open({ userId: "u_1", channels: [A], cursor, connect: () => connection });
    return { connection, live };
  };
  return { broker, history, hub, publish, cursorNow, open };
}

const progress = (c: FakeConnection) => dataEvents(c.text).map((e) => e.progress);

describe("streams opening at once share their reads", () => {
  it("twenty streams of one channel opening in one tick make fewer than twenty position reads", async () => {
    const { broker, hub, publish, cursorNow, open } = setup();
    await publish(1, 3);
    await cursorNow();
    broker.positions = 0;
    const streams = Array.from({ length: 20 }, () => open());
    await Promise.all(streams.map((s) => s.live));
    assert.ok(broker.positions <= 2, `${broker.positions} position reads for 20 streams`);
    await publish(4, 5);
    await settle();
    for (const s of streams) assert.deepEqual(progress(s.connection), [4, 5]);
    await hub.close();
  });

  it("streams resuming in one tick from different cursors each get exactly their gap, sharing the reads of equal cursors", async () => {
    const { history, hub, publish, cursorNow, open } = setup();
    await publish(1, 3);
    const at3 = await cursorNow();
    await publish(4, 6);
    const at6 = await cursorNow();
    await publish(7, 13);
    history.reads.length = 0;
    const from3 = Array.from({ length: 10 }, () => open(at3));
    const from6 = Array.from({ length: 10 }, () => open(at6));
    await Promise.all([...from3, ...from6].map((s) => s.live));
    for (const s of from3) assert.deepEqual(progress(s.connection), range(4, 13));
    for (const s of from6) assert.deepEqual(progress(s.connection), range(7, 13));
    // Each stream alone: one check read and ceil(gap / 4) pages — 20 + 30 + 20 = 70.
    assert.ok(history.reads.length < 35, `${history.reads.length} history reads for 20 resumes`);
    await publish(14, 14);
    await settle();
    for (const s of [...from3, ...from6]) {
      assert.equal(progress(s.connection).at(-1), 14);
      assert.deepEqual(controlEvents(s.connection.text, "reset"), []);
    }
    await hub.close();
  });

  it("an event published while streams resume reaches each of them once, in order", async () => {
    const { hub, publish, cursorNow, open } = setup();
    await publish(1, 2);
    const at2 = await cursorNow();
    await publish(3, 8);
    const streams = Array.from({ length: 10 }, () => open(at2));
    // Published while the opens are reading positions and history.
    const late = publish(9, 10);
    await Promise.all([late, ...streams.map((s) => s.live)]);
    await settle();
    for (const s of streams) {
      assert.deepEqual(progress(s.connection), range(3, 10));
      assert.deepEqual(controlEvents(s.connection.text, "reset"), []);
    }
    // And streams resuming at staggered moments of that publish, too.
    const staggered: ReturnType<typeof open>[] = [];
    for (let i = 0; i < 6; i++) {
      staggered.push(open(at2));
      if (i % 2 === 0) void publish(11 + i / 2, 11 + i / 2);
      await Promise.resolve();
    }
    await Promise.all(staggered.map((s) => s.live));
    await settle();
    for (const s of staggered) {
      assert.deepEqual(progress(s.connection), range(3, 13));
      assert.deepEqual(controlEvents(s.connection.text, "reset"), []);
    }
    await hub.close();
  });
});
