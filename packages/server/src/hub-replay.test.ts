/**
 * Replays are streamed, a page of history at a time, and bounded per pod and per user: what a
 * resuming client costs the pod does not grow with how far behind it is or how slowly it reads.
 * (The memory broker's reads resolve in microtasks, so one `settle()` lets a replay run as far
 * as it can: whatever it has not read by then, it is waiting for.)
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ChannelName, decodeCursor } from "@realtime/protocol";
import type { HistoryPage, HistoryStore } from "./history-store.ts";
import { Hub, type HubOptions } from "./hub.ts";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { waitFor } from "./testing/broker-contract.ts";
import { FakeConnection } from "./testing/fake-connection.ts";
import { controlEvents, dataEvents, lastIdOf, parseSse } from "./testing/parse-sse.ts";

const A = "channel:a" as ChannelName;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The memory history, recording every read; `fail` makes a read reject. */
class RecordingHistory implements HistoryStore {
  readonly reads: { after: number; limit: number; got: number }[] = [];
  fail: (read: number) => boolean = () => false;
  readonly #inner: HistoryStore;
  constructor(inner: HistoryStore) {
    this.#inner = inner;
  }
  async read(channel: ChannelName, after: number, limit: number): Promise<HistoryPage> {
    if (this.fail(this.reads.length)) throw new Error("history is away");
    const page = await this.#inner.read(channel, after, limit);
    this.reads.push({ after, limit, got: page.messages.length });
    return page;
  }
}

function setup(options: Partial<HubOptions> & { size?: number } = {}) {
  const bus = new MemoryBus({ retention: { size: options.size ?? 10_000 }, sweepIntervalMs: 0 });
  const broker = new MemoryBroker({ bus });
  const history = new RecordingHistory(broker);
  const hub = new Hub({
    broker,
    history,
    positionCheckIntervalMs: 0,
    replayPageSize: 10,
    ...options,
  });
  /** 2 KB events: a page of 10 is ~20 KB, the replay high-water mark 64 KB. */
  const publish = async (from: number, to: number) => {
    for (let n = from; n <= to; n++) {
      await hub.publish(A, { type: "n", progress: n, content: "x".repeat(2_000) });
    }
  };
  /** A cursor at the channel's current top, from a stream that then goes away. */
  const cursorNow = async () => {
    const c = new FakeConnection();
    await hub.open({ userId: "u_cursor", channels: [A], connect: () => c });
    c.hangUp();
    return lastIdOf(c.text);
  };
  /** Opens a resuming stream whose peer does not read; the open resolves once it is live. */
  const resume = (userId: string, cursor: string) => {
    const connection = new FakeConnection();
    connection.accepting = false;
    const live = hub.open({ userId, channels: [A], cursor, connect: () => connection });
    return { connection, live };
  };
  return { bus, hub, history, publish, cursorNow, resume };
}

/** Plays a peer that reads whatever is queued, turn after turn, until `done` settles. */
async function readUntil(connection: FakeConnection, done: Promise<unknown>): Promise<void> {
  let settled = false;
  void done.then(() => {
    settled = true;
  });
  while (!settled) {
    connection.drain();
    connection.accepting = false;
    await settle();
  }
}

const progress = (c: FakeConnection) => dataEvents(c.text).map((e) => e.progress);

/** Reads the replay made (planResume's one-event check excluded). */
const pages = (history: RecordingHistory) => history.reads.filter((r) => r.limit > 1);

describe("replay is streamed a page at a time", () => {
  it("reads the next page only once the peer drained the last: a stuck client holds one page", async () => {
    const { hub, history, publish, cursorNow, resume } = setup();
    const cursor = await cursorNow();
    await publish(1, 100);
    const { connection, live } = resume("u_1", cursor);
    await settle();
    // ~33 events of ~2 KB pass the 64 KB high-water mark: then it waits, holding at most the
    // rest of the page it was writing.
    const sent = progress(connection).length;
    const read = pages(history).length;
    assert.ok(sent > 20 && sent < 50, `sent ${sent} before waiting`);
    assert.ok(
      read * 10 - sent < 10,
      `read ${read} pages for ${sent} events: one page ahead at most`,
    );
    assert.deepEqual(progress(connection), range(1, sent));
    await settle();
    assert.equal(pages(history).length, read, "nothing read ahead while the peer does not read");
    await readUntil(connection, live);
    assert.ok(pages(history).every((r) => r.limit <= 10 && r.got <= 10));
    assert.equal(pages(history).length, 10);
    await publish(101, 101);
    await settle();
    assert.deepEqual(progress(connection), range(1, 101), "every event once, in order");
    assert.deepEqual(controlEvents(connection.text, "reset"), []);
    await hub.close();
  });

  it("stops reading, and frees its slot, when the client goes away mid-replay", async () => {
    const { hub, history, publish, cursorNow, resume } = setup();
    const cursor = await cursorNow();
    await publish(1, 100);
    const { connection, live } = resume("u_1", cursor);
    await settle();
    assert.deepEqual(hub.replays, { running: 1, waiting: 0 });
    connection.hangUp();
    await live;
    const read = pages(history).length;
    connection.drain();
    await settle();
    assert.equal(pages(history).length, read, "no page read after the client left");
    assert.deepEqual(hub.replays, { running: 0, waiting: 0 });
    await hub.close();
  });
});

describe("a replay is written a page at a time", () => {
  it("small events: one write per page of history, then one for what arrived live meanwhile", async () => {
    const { hub, history, cursorNow } = setup();
    const cursor = await cursorNow();
    for (let n = 1; n <= 25; n++) await hub.publish(A, { type: "n", progress: n });
    const connection = new FakeConnection();
    const live = hub.open({
      userId: "u_1",
      channels: [A],
      cursor,
      connect: () => connection,
    });
    // Three events published while the replay runs: held, then written together at its end.
    while (pages(history).length === 0) await Promise.resolve();
    for (let n = 26; n <= 28; n++) void hub.publish(A, { type: "n", progress: n });
    await live;
    await settle();
    assert.deepEqual(progress(connection), range(1, 28), "every event once, in order");
    assert.equal(pages(history).length, 3);
    // The head (retry, ready), three pages of replay, the events held while replaying.
    assert.equal(connection.chunks.length, 5, `${connection.chunks.length} writes`);
    await hub.close();
  });
});

describe("replays are bounded per pod and per user", () => {
  it("past the pod's slots, resuming streams wait without reading; each starts as a slot frees", async () => {
    const { hub, publish, cursorNow, resume } = setup({ maxConcurrentReplays: 2 });
    const cursor = await cursorNow();
    await publish(1, 100);
    const streams = ["u_1", "u_2", "u_3", "u_4", "u_5", "u_6"].map((u) => resume(u, cursor));
    await settle();
    assert.deepEqual(hub.replays, { running: 2, waiting: 4 });
    const started = () => streams.map((s) => progress(s.connection).length > 0);
    assert.deepEqual(
      started(),
      [true, true, false, false, false, false],
      "the others read nothing",
    );
    // A waiting stream that goes away gives its place up.
    streams[2]?.connection.hangUp();
    // The first finishes: the next waiting one (u_4) starts.
    const first = streams[0];
    assert.ok(first);
    await readUntil(first.connection, first.live);
    await settle();
    assert.deepEqual(hub.replays, { running: 2, waiting: 2 });
    assert.equal(progress(first.connection).length, 100);
    assert.deepEqual(started(), [true, true, false, true, false, false]);
    await hub.close();
  });

  it("one user's second replay waits while another user's first, which came later, goes ahead", async () => {
    const { hub, publish, cursorNow, resume } = setup({
      maxConcurrentReplays: 2,
      maxReplaysPerUser: 1,
    });
    const cursor = await cursorNow();
    await publish(1, 100);
    const mine = [resume("u_1", cursor), resume("u_1", cursor)];
    const theirs = resume("u_2", cursor);
    await settle();
    assert.deepEqual(hub.replays, { running: 2, waiting: 1 });
    assert.deepEqual(
      [...mine, theirs].map((s) => progress(s.connection).length > 0),
      [true, false, true],
    );
    await hub.close();
  });
});

describe("history that changes under a replay", () => {
  it("trimmed past the replay meanwhile: one reset (trimmed) that moves the cursor past the hole, then live", async () => {
    const { hub, history, publish, cursorNow, resume } = setup({ size: 60 });
    const cursor = await cursorNow();
    await publish(1, 50);
    const { connection, live } = resume("u_1", cursor);
    await settle();
    // What the replay has read so far (whole pages; the rest of the last is still to be sent).
    const read = pages(history).length * 10;
    assert.ok(progress(connection).length > 0 && read < 50);
    // A busy channel: 100 more events while the client is stuck; history keeps the last 60.
    await publish(51, 150);
    await readUntil(connection, live);
    const resets = controlEvents(connection.text, "reset");
    assert.deepEqual(
      resets.map((r) => r.reason),
      ["trimmed"],
    );
    // The replay sent what it had read, then found the rest gone; its planned end was 50; the
    // live events from 51 follow.
    assert.deepEqual(progress(connection), [...range(1, read), ...range(51, 150)]);
    const reset = parseSse(connection.text).events.find((e) => e.event === "reset");
    assert.ok(reset?.id, "the reset carries the cursor past the hole");
    const decoded = decodeCursor(reset.id);
    assert.deepEqual(
      [...(decoded?.entries.values() ?? [])].map((e) => e.offset),
      [50],
      "moved to the replay's planned end: what follows continues from it",
    );
    // The client is at 150 now; resuming from there needs nothing.
    const again = new FakeConnection();
    const last = lastIdOf(connection.text);
    await hub.open({ userId: "u_1", channels: [A], cursor: last, connect: () => again });
    assert.deepEqual(controlEvents(again.text, "reset"), []);
    assert.deepEqual(progress(again), []);
    await hub.close();
  });

  it("a history read that fails mid-replay closes with insufficient_state; the resume completes it", async () => {
    const { hub, history, publish, cursorNow, resume } = setup();
    const cursor = await cursorNow();
    await publish(1, 100);
    history.fail = (read) => read === 3; // the check, two pages, then a failure
    const { connection, live } = resume("u_1", cursor);
    connection.accepting = true;
    await live;
    const close = controlEvents(connection.text, "close");
    assert.deepEqual(
      close.map((c) => c.code),
      [3010],
    );
    assert.deepEqual(progress(connection), range(1, 20));
    history.fail = () => false;
    const again = new FakeConnection();
    await hub.open({
      userId: "u_1",
      channels: [A],
      cursor: lastIdOf(connection.text),
      connect: () => again,
    });
    assert.deepEqual(progress(again), range(21, 100));
    assert.deepEqual(controlEvents(again.text, "reset"), []);
    await hub.close();
  });
});

describe("a replay and the stream's other bounds", () => {
  it("backpressure is checked event by event: a client that reads is never dropped as slow mid-page", async () => {
    // A page of 64 events of 4 KiB is the whole 256 KiB slow-client bound: written at once on
    // top of what is queued, it would pass it.
    const { hub, cursorNow } = setup({ replayPageSize: 64, maxQueuedBytes: 256 * 1024 });
    const cursor = await cursorNow();
    for (let n = 1; n <= 200; n++) {
      await hub.publish(A, { type: "n", progress: n, content: "x".repeat(4 * 1024) });
    }
    const connection = new FakeConnection();
    connection.accepting = false; // the window is full now; the peer reads every turn
    const live = hub.open({ userId: "u_1", channels: [A], cursor, connect: () => connection });
    await readUntil(connection, live);
    assert.equal(connection.destroyed, false, "not dropped as slow");
    assert.deepEqual(progress(connection), range(1, 200));
    await hub.close();
  });

  it("a stream the hub closes while its replay waits for the peer gives its slot back; the socket goes after the stall time", async () => {
    let now = 1_000_000;
    const { hub, cursorNow, publish } = setup({
      maxConcurrentReplays: 1,
      maxStallMs: 50,
      now: () => now,
      sweepIntervalMs: 3_600_000,
    });
    const cursor = await cursorNow();
    await publish(1, 100);
    const stuck = new FakeConnection();
    stuck.accepting = false;
    const stuckLive = hub.open({
      userId: "u_stuck",
      channels: [A],
      cursor,
      expiresAt: now + 500,
      connect: () => stuck,
    });
    await settle();
    assert.deepEqual(hub.replays, { running: 1, waiting: 0 });
    now += 1_000;
    hub.sweep(); // its token expired: closed with 3005, gracefully — to a peer that does not read
    await stuckLive;
    assert.equal(hub.connectionCount, 0);
    assert.deepEqual(hub.replays, { running: 0, waiting: 0 }, "the slot is free again");
    // Another client's resume gets it at once.
    const other = new FakeConnection();
    await hub.open({ userId: "u_2", channels: [A], cursor, connect: () => other });
    assert.deepEqual(progress(other), range(1, 100));
    // The graceful end never completes (nothing is read): the connection is dropped instead.
    await waitFor(() => stuck.destroyed, "the stuck socket dropped after maxStallMs");
    await hub.close();
  });

  it("a stream waiting for a replay slot holds no more live bytes than its queue may: then 3010", async () => {
    const { hub, cursorNow, publish, resume } = setup({
      maxConcurrentReplays: 1,
      maxQueuedBytes: 128 * 1024,
    });
    const cursor = await cursorNow();
    await publish(1, 100);
    const holder = resume("u_1", cursor);
    const waiter = resume("u_2", cursor);
    waiter.connection.accepting = true;
    await settle();
    assert.deepEqual(hub.replays, { running: 1, waiting: 1 });
    // A busy channel while it waits: ~140 KB of live events, past its 128 KiB.
    await publish(101, 170);
    await waiter.live;
    assert.deepEqual(
      controlEvents(waiter.connection.text, "close").map((c) => c.code),
      [3010],
      "closed for a resume, not kept growing",
    );
    // The stuck replay holding the slot buffered the same live events: it went the same way.
    await holder.live;
    assert.deepEqual(
      controlEvents(holder.connection.text, "close").map((c) => c.code),
      [3010],
    );
    assert.deepEqual(hub.replays, { running: 0, waiting: 0 });
    // The waiter resumes from its cursor (it got nothing yet) and gets everything.
    const again = new FakeConnection();
    await hub.open({ userId: "u_2", channels: [A], cursor, connect: () => again });
    assert.deepEqual(progress(again), range(1, 170));
    await hub.close();
  });
});
