import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type ChannelName, CloseCode, decodeCursor, encodeCursor } from "@realtime/protocol";
import { Hub, HubError, type HubOptions } from "./hub.ts";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import type { Metrics } from "./metrics.ts";
import { FakeConnection } from "./testing/fake-connection.ts";
import { controlEvents, dataEvents, lastIdOf, parseSse } from "./testing/parse-sse.ts";

const A = "channel:a" as ChannelName;
const B = "channel:b" as ChannelName;

function setup(options: Partial<HubOptions> = {}) {
  const bus = new MemoryBus();
  const broker = new MemoryBroker({ bus });
  let clock = 1_000_000;
  const hub = new Hub({ broker, now: () => clock, random: () => 0.5, ...options });
  async function connect(
    channels: ChannelName[],
    extra: { cursor?: string; userId?: string } = {},
  ) {
    const connection = new FakeConnection();
    const stream = await hub.open({
      userId: extra.userId ?? "u_1",
      channels,
      cursor: extra.cursor ?? null,
      connect: () => connection,
    });
    return { connection, stream };
  }
  return {
    bus,
    broker,
    hub,
    connect,
    advance(ms: number) {
      clock += ms;
    },
  };
}

// `gc()` without running the whole test process with --expose-gc.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Waits until the broker's deliveries (queued microtasks) have run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("Hub fan-out", () => {
  it("delivers an event to every stream of its channel and to no other", async () => {
    const { hub, connect } = setup();
    const subs = await Promise.all([connect([A]), connect([A]), connect([A])]);
    const other = await connect([B]);
    await hub.publish(A, { type: "chat", content: "hi", userId: "u_2" });
    await settle();
    for (const { connection } of subs) {
      const events = dataEvents(connection.text);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.type, "chat");
      assert.equal(events[0]?.channel, A);
      assert.equal(events[0]?.content, "hi");
      assert.match(String(events[0]?.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    assert.equal(dataEvents(other.connection.text).length, 0);
    assert.equal(hub.connectionCount, 4);
    assert.equal(hub.channelCount, 2);
    await hub.close();
  });

  it("carries several channels on one stream, in publish order per channel", async () => {
    const { hub, connect } = setup();
    const { connection } = await connect([A, B]);
    for (let i = 0; i < 5; i++) {
      await hub.publish(A, { type: "n", content: `a${i}` });
      await hub.publish(B, { type: "n", content: `b${i}` });
    }
    await settle();
    const contents = dataEvents(connection.text).map((e) => e.content);
    assert.deepEqual(
      contents.filter((c) => String(c).startsWith("a")),
      ["a0", "a1", "a2", "a3", "a4"],
    );
    assert.equal(contents.length, 10);
    await hub.close();
  });

  it("sendToUser reaches the user's private channel", async () => {
    const { hub, connect } = setup();
    const { connection } = await connect(["user:u_9" as ChannelName], { userId: "u_9" });
    await hub.sendToUser("u_9", { type: "notice", message: "hello" });
    await settle();
    assert.deepEqual(
      dataEvents(connection.text).map((e) => [e.type, e.channel]),
      [["notice", "user:u_9"]],
    );
    await hub.close();
  });

  it("counts deliveries once per stream", async () => {
    const sent: number[] = [];
    const metrics: Metrics = {
      eventsSent: (n) => sent.push(n),
      eventPublished() {},
      publishFailed() {},
      connectionRefused() {},
      connectionClosed() {},
    };
    const { hub, connect } = setup({ metrics });
    await Promise.all([connect([A]), connect([A])]);
    await hub.publish(A, { type: "x" });
    await settle();
    assert.deepEqual(sent, [2]);
    await hub.close();
  });

  it("reports the time from a request's arrival to its stream's first write, once per stream", async () => {
    const opened: { seconds: number; written: string }[] = [];
    let connection = new FakeConnection();
    const metrics: Metrics = {
      eventsSent() {},
      eventPublished() {},
      publishFailed() {},
      connectionRefused() {},
      connectionClosed() {},
      streamOpened: (seconds) => opened.push({ seconds, written: connection.text }),
    };
    const { hub } = setup({ metrics });
    const receivedAt = performance.now() - 250;
    const before = performance.now();
    await hub.open({ userId: "u_1", channels: [A], receivedAt, connect: () => connection });
    const after = performance.now();
    assert.equal(opened.length, 1);
    const [{ seconds, written } = { seconds: -1, written: "" }] = opened;
    // Seconds, not milliseconds: at least the 250 ms before the call, at most until it returned.
    assert.ok(seconds >= (before - receivedAt) / 1000, `${seconds}`);
    assert.ok(seconds <= (after - receivedAt) / 1000, `${seconds}`);
    assert.notEqual(written, "", "reported once the stream's first bytes are written");

    // A caller that does not say when its request arrived is not timed.
    connection = new FakeConnection();
    await hub.open({ userId: "u_1", channels: [A], connect: () => connection });
    assert.equal(opened.length, 1);
    await hub.close();
  });

  it("subscribes the broker on the first stream of a channel and unsubscribes after the last", async () => {
    const { hub, bus, connect } = setup();
    const one = await connect([A]);
    const two = await connect([A]);
    assert.equal(bus.subscriberCount(A), 1);
    one.connection.hangUp();
    assert.equal(bus.subscriberCount(A), 1);
    two.connection.hangUp();
    await settle();
    assert.equal(bus.subscriberCount(A), 0);
    assert.equal(hub.channelCount, 0);
    assert.equal(hub.connectionCount, 0);
    await hub.close();
  });

  it("refuses an event larger than the envelope limit", async () => {
    const { hub } = setup();
    await assert.rejects(hub.publish(A, { type: "x", content: "y".repeat(20_000) }), (e) => {
      assert.ok(e instanceof HubError);
      assert.equal(e.code, "too_large");
      return true;
    });
    await hub.close();
  });
});

describe("Hub stream lifecycle", () => {
  it("tells hooks when a stream is live and when it is gone, with who and which channels", async () => {
    const { hub } = setup();
    const seen: string[] = [];
    hub.onStream({
      opened: (s) => seen.push(`open ${s.userId} ${s.userName} ${s.channels.join(",")}`),
      closed: (s) => seen.push(`closed ${s.userId}`),
    });
    const connection = new FakeConnection();
    const stream = await hub.open({
      userId: "u_7",
      userName: "Grace",
      channels: [A, B],
      connect: () => connection,
    });
    assert.deepEqual(hub.streams(), [stream]);
    connection.hangUp();
    assert.deepEqual(seen, [`open u_7 Grace ${A},${B}`, "closed u_7"]);
    assert.deepEqual(hub.streams(), []);
    await hub.close();
  });
});

describe("Hub cursors", () => {
  it("starts every stream with a retry hint and a ready event holding the positions", async () => {
    const { hub, broker, connect } = setup();
    await hub.publish(A, { type: "x" });
    await hub.publish(A, { type: "x" });
    const { connection } = await connect([A, B]);
    // Each channel has an epoch of its own.
    const [a, b] = [await broker.position(A), await broker.position(B)];
    assert.notEqual(a.epoch, b.epoch);
    const parsed = parseSse(connection.text);
    assert.deepEqual(
      parsed.events.map((e) => e.event),
      ["ready"],
      "no application event, only the ready control event",
    );
    assert.deepEqual(parsed.retries, [2000 + 1500]);
    const expected = encodeCursor([
      [A, { epoch: a.epoch, offset: 2 }],
      [B, { epoch: b.epoch, offset: 0 }],
    ]);
    assert.equal(parsed.events[0]?.id, expected);
    assert.equal(parsed.lastEventId, expected);
    assert.deepEqual(JSON.parse(parsed.events[0]?.data ?? "{}").channels, [A, B]);
    await hub.close();
  });

  it("gives each event an id that encodes every channel's position", async () => {
    const { hub, broker, connect } = setup();
    const { connection } = await connect([A, B]);
    const [a, b] = [await broker.position(A), await broker.position(B)];
    await hub.publish(B, { type: "x" });
    await hub.publish(A, { type: "x" });
    await hub.publish(A, { type: "x" });
    await settle();
    const ids = parseSse(connection.text)
      .events.filter((e) => e.event === undefined)
      .map((e) => e.id);
    const expect = (x: number, y: number) =>
      encodeCursor([
        [A, { epoch: a.epoch, offset: x }],
        [B, { epoch: b.epoch, offset: y }],
      ]);
    assert.deepEqual(ids, [expect(0, 1), expect(1, 1), expect(2, 1)]);
    assert.ok((ids[2] ?? "").length <= 128);
    await hub.close();
  });

  it("continues without a reset when the cursor is at the channel's top", async () => {
    const { hub, connect } = setup();
    const first = await connect([A]);
    await hub.publish(A, { type: "x" });
    await settle();
    const cursor = lastIdOf(first.connection.text);
    const again = await connect([A], { cursor });
    await hub.publish(A, { type: "y" });
    await settle();
    assert.deepEqual(controlEvents(again.connection.text, "reset"), []);
    assert.deepEqual(
      dataEvents(again.connection.text).map((e) => e.type),
      ["y"],
    );
    await hub.close();
  });

  it("sends one reset per channel it cannot resume, never a partial replay", async () => {
    const { hub, connect } = setup();
    const first = await connect([A, B]);
    const cursor = lastIdOf(first.connection.text);
    await hub.publish(A, { type: "missed" });
    const again = await connect([A, B], { cursor });
    const resets = controlEvents(again.connection.text, "reset");
    assert.deepEqual(
      resets.map((r) => [r.channel, r.reason]),
      [[A, "trimmed"]],
    );
    assert.deepEqual(dataEvents(again.connection.text), []);
    await hub.close();
  });

  it("resets every channel for a garbage cursor and for a cursor of another epoch", async () => {
    const { hub, connect } = setup();
    const garbage = await connect([A, B], { cursor: "<script>" });
    assert.deepEqual(
      controlEvents(garbage.connection.text, "reset").map((r) => r.reason),
      ["unknown_cursor", "unknown_cursor"],
    );
    const foreign = encodeCursor([[A, { epoch: "other-epoch", offset: 3 }]]);
    const old = await connect([A, B], { cursor: foreign });
    assert.deepEqual(
      controlEvents(old.connection.text, "reset").map((r) => [r.channel, r.reason]),
      [[A, "epoch_changed"]],
    );
    const huge = await connect([A], { cursor: "1.".padEnd(10_000, "a") });
    assert.equal(controlEvents(huge.connection.text, "reset").length, 1);
    await hub.close();
  });

  it("starts a channel that is new to the stream from now, without a reset", async () => {
    const { hub, connect } = setup();
    const first = await connect([A]);
    const cursor = lastIdOf(first.connection.text);
    await hub.publish(B, { type: "before" });
    const widened = await connect([A, B], { cursor });
    assert.deepEqual(controlEvents(widened.connection.text, "reset"), []);
    const decoded = decodeCursor(lastIdOf(widened.connection.text));
    assert.equal(decoded?.entries.size, 2);
    await hub.close();
  });

  it("delivers events published while a stream was being prepared exactly once", async () => {
    const { hub, connect } = setup();
    const opening = connect([A]);
    const publishing = Promise.all(
      [1, 2, 3].map((i) => hub.publish(A, { type: "n", progress: i })),
    );
    const [{ connection }] = await Promise.all([opening, publishing]);
    await hub.publish(A, { type: "n", progress: 4 });
    await settle();
    const seen = dataEvents(connection.text).map((e) => e.progress);
    assert.equal(new Set(seen).size, seen.length, "no duplicates");
    assert.equal(seen.at(-1), 4);
    await hub.close();
  });
});

describe("Hub bounds", () => {
  it("drops a stream whose unsent bytes pass the bound, and keeps the others", async () => {
    const { hub, connect } = setup({ maxQueuedBytes: 4096 });
    const slow = await connect([A]);
    const fine = await connect([A]);
    slow.connection.accepting = false;
    for (let i = 0; i < 20; i++) await hub.publish(A, { type: "x", content: "z".repeat(500) });
    await settle();
    assert.equal(slow.connection.destroyed, true);
    assert.ok(slow.connection.queued < 4096 + 1024, "stopped writing at the bound");
    assert.equal(dataEvents(fine.connection.text).length, 20);
    assert.equal(hub.connectionCount, 1);
    await hub.close();
  });

  it("drops a stream whose writes stay backed up past the stall limit", async () => {
    const { hub, connect, advance } = setup({ maxStallMs: 5_000 });
    const slow = await connect([A]);
    slow.connection.accepting = false;
    await hub.publish(A, { type: "x" });
    await settle();
    advance(4_000);
    hub.sweep();
    assert.equal(slow.connection.destroyed, false);
    advance(1_000);
    hub.sweep();
    assert.equal(slow.connection.destroyed, true);
    await hub.close();
  });

  it("forgets a stall once the peer drains", async () => {
    const { hub, connect, advance } = setup({ maxStallMs: 5_000 });
    const s = await connect([A]);
    s.connection.accepting = false;
    await hub.publish(A, { type: "x" });
    await settle();
    s.connection.drain();
    advance(6_000);
    hub.sweep();
    assert.equal(s.connection.destroyed, false);
    await hub.close();
  });

  it("writes a heartbeat only to streams idle for the interval", async () => {
    const { hub, connect, advance } = setup({ heartbeatIntervalMs: 15_000 });
    const idle = await connect([A]);
    const busy = await connect([B]);
    advance(10_000);
    await hub.publish(B, { type: "x" });
    await settle();
    advance(5_000);
    hub.sweep();
    assert.equal(parseSse(idle.connection.text).comments.length, 1);
    assert.equal(parseSse(busy.connection.text).comments.length, 0);
    await hub.close();
  });

  it("closes a stream when its token expires, telling the client to refresh", async () => {
    const { hub, advance } = setup();
    const connection = new FakeConnection();
    await hub.open({
      userId: "u_1",
      channels: [A],
      expiresAt: 1_000_000 + 60_000,
      connect: () => connection,
    });
    advance(59_999);
    hub.sweep();
    assert.equal(connection.ended, false);
    advance(1);
    hub.sweep();
    assert.equal(connection.ended, true);
    const [close] = controlEvents(connection.text, "close");
    assert.equal(close?.code, CloseCode.TokenExpired);
    assert.equal(close?.reason, "token_expired");
    await hub.close();
  });

  it("closes an expiring stream at its expiresAt on its own timer, not at the next sweep", async (t) => {
    const { hub } = setup();
    // Only timeouts are mocked: the sweep (an interval) never runs here, so a close can only
    // come from the stream's own timer, and exactly when the test moves the clock there.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const connection = new FakeConnection();
    await hub.open({
      userId: "u_1",
      channels: [A],
      expiresAt: 1_000_000 + 1_500,
      connect: () => connection,
    });
    t.mock.timers.tick(1_499);
    assert.equal(connection.ended, false);
    t.mock.timers.tick(1);
    assert.equal(connection.ended, true, "closed at expiresAt, without a sweep");
    assert.equal(controlEvents(connection.text, "close")[0]?.code, CloseCode.TokenExpired);
    await hub.close();
  });

  it("keeps nothing of a stream its client closed, expiring token or not", async () => {
    const { hub } = setup();
    const refs: WeakRef<object>[] = [];
    // Tokens of different lifetimes (each its own deadline) and one that never expires.
    const lifetimes = [...Array.from({ length: 40 }, (_, i) => 60_000 + i * 7), undefined];
    // Each in a call of its own, so that no frame of the test's still holds the last one.
    const openAndClose = async (lifetime: number | undefined) => {
      const connection = new FakeConnection();
      const stream = await hub.open({
        userId: "u_1",
        channels: [A, B],
        expiresAt: lifetime === undefined ? undefined : 1_000_000 + lifetime,
        connect: () => connection,
      });
      refs.push(new WeakRef(stream), new WeakRef(connection));
      connection.destroy();
    };
    for (const lifetime of lifetimes) await openAndClose(lifetime);
    assert.equal(hub.connectionCount, 0);
    // A WeakRef's target lives to the end of the job that made or read it: collect after it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    gc();
    const kept = refs.filter((ref) => ref.deref() !== undefined).length;
    assert.equal(kept, 0, `${kept} of ${refs.length} streams and connections still held`);
    await hub.close();
  });

  it("refuses streams past maxConnections, counting streams still opening", async () => {
    const { hub, connect } = setup({ maxConnections: 2 });
    await Promise.all([connect([A]), connect([B])]);
    await assert.rejects(connect([A]), (e) => e instanceof HubError && e.code === "at_capacity");
    await hub.close();
  });

  it("drains: refuses new streams, closes open ones with shutdown and a retry hint", async () => {
    const { hub, connect } = setup();
    const streams = await Promise.all([connect([A]), connect([B]), connect([A, B])]);
    await hub.drain(50);
    for (const { connection } of streams) {
      assert.equal(connection.ended, true);
      const text = connection.text;
      const [close] = controlEvents(text, "close");
      assert.equal(close?.code, CloseCode.Shutdown);
      assert.ok(parseSse(text).retries.length >= 2, "a fresh retry hint comes with the close");
    }
    assert.equal(hub.connectionCount, 0);
    await assert.rejects(connect([A]), (e) => e instanceof HubError && e.code === "shutting_down");
    await hub.close();
  });

  it("drains: each stream closes at its own random moment of the window, not all at once", async (t) => {
    // The moments the drain draws, in turn; every other draw (retry hints) is 0.5.
    const draws: number[] = [];
    const { hub, connect } = setup({ random: () => draws.shift() ?? 0.5 });
    const streams = await Promise.all([connect([A]), connect([B]), connect([A, B])]);
    // Only the drain's timers are mocked: the clock moves when the test says, so what is
    // checked is when each close was scheduled, whatever the machine's load.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    draws.push(0.9, 0.1, 0.5);
    const draining = hub.drain(1_000);
    const ended = () => streams.map(({ connection }) => connection.ended);
    assert.deepEqual(ended(), [false, false, false], "nothing closes when the drain starts");
    t.mock.timers.tick(99);
    assert.deepEqual(ended(), [false, false, false]);
    t.mock.timers.tick(1);
    assert.deepEqual(ended(), [false, true, false], "the one drawn 0.1 at 100 ms");
    t.mock.timers.tick(400);
    assert.deepEqual(ended(), [false, true, true], "0.5: at 500 ms");
    t.mock.timers.tick(400);
    assert.deepEqual(ended(), [true, true, true], "0.9: at 900 ms, inside the window");
    await draining;
    assert.equal(hub.connectionCount, 0);
    await hub.close();
  });

  it("abandons a stream whose client left while it was being prepared", async () => {
    const { hub, bus } = setup();
    const abort = new AbortController();
    let connected = false;
    const opening = hub.open({
      userId: "u",
      channels: [A],
      signal: abort.signal,
      connect: () => {
        connected = true;
        return new FakeConnection();
      },
    });
    abort.abort();
    await assert.rejects(opening, (e) => e instanceof HubError);
    assert.equal(connected, false, "no headers were sent");
    await settle();
    assert.equal(hub.connectionCount, 0);
    assert.equal(hub.channelCount, 0);
    assert.equal(bus.subscriberCount(A), 0);
    await hub.close();
  });

  it("refuses to open when the broker cannot subscribe, and leaves nothing behind", async () => {
    const bus = new MemoryBus();
    const broker = new MemoryBroker({ bus });
    await broker.close();
    const hub = new Hub({ broker });
    await assert.rejects(
      hub.open({ userId: "u", channels: [A], connect: () => new FakeConnection() }),
      (e) => e instanceof HubError && e.code === "broker_unavailable",
    );
    assert.equal(hub.channelCount, 0);
    await hub.close();
  });
});
