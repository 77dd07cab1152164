import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { Hub } from "./hub.ts";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { MemoryPresenceBackend, MemoryPresenceStore } from "./memory-presence-store.ts";
import { Presence } from "./presence.ts";
import type { PresenceStatus, PresenceUser } from "./presence-store.ts";
import { FakeConnection } from "./testing/fake-connection.ts";
import { dataEvents } from "./testing/parse-sse.ts";

const usersIn = async (
  p: { snapshot(c: ChannelName): Promise<{ users: PresenceUser[] }> },
  c: ChannelName,
) => (await p.snapshot(c)).users;
const ROOM = "channel:room" as ChannelName;
const GRACE = 5_000;
const TTL = 10_000;
const REFRESH = 3_000;

/** Pods (hub + presence) on one memory bus and one presence backend, with one fake clock. */
function cluster() {
  const bus = new MemoryBus();
  const backend = new MemoryPresenceBackend();
  let clock = 1_800_000_000_000;
  const counted: PresenceStatus[] = [];
  const pods: { hub: Hub; presence: Presence }[] = [];
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    now: () => clock,
    counted,
    pod() {
      const hub = new Hub({ broker: new MemoryBroker({ bus }), now: () => clock });
      const store = new MemoryPresenceStore({ backend, graceMs: GRACE, ttlMs: TTL });
      const presence = new Presence({
        hub,
        store,
        timers: false,
        refreshMs: REFRESH,
        metrics: { presenceEvent: (status) => counted.push(status) },
      });
      const pod = { hub, presence };
      pods.push(pod);
      return pod;
    },
    async open(pod: { hub: Hub }, userId: string, channels: ChannelName[] = [ROOM]) {
      const connection = new FakeConnection();
      await pod.hub.open({
        userId,
        userName: userId.toUpperCase(),
        channels,
        connect: () => connection,
      });
      return connection;
    },
    /** Lets every pod finish its presence work and the bus deliver. */
    async quiet() {
      for (let i = 0; i < 3; i++) {
        await Promise.all(pods.map((p) => p.presence.flush()));
        await settle();
      }
    },
    /** Advances the clock in steps, ticking the given pods (the others are "frozen"). */
    async advance(ms: number, ticking = pods) {
      const step = 250;
      for (let done = 0; done < ms; done += step) {
        clock += Math.min(step, ms - done);
        await Promise.all(ticking.map((p) => p.presence.tick()));
        await this.quiet();
      }
    },
    async close() {
      for (const p of pods) await p.hub.close();
    },
  };
}

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !check(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(check(), "condition never held");
}

/** The presence events a connection received, as `status userId`. */
const presenceOf = (connection: FakeConnection, userId?: string) =>
  dataEvents(connection.text)
    .filter((e) => e.type === "presence" && (userId === undefined || e.userId === userId))
    .map((e) => `${e.status} ${e.userId}`);

describe("Presence (memory store, fake clock)", () => {
  it("three tabs on two pods: one online; closing two: nothing; the last: one offline after grace", async () => {
    const c = cluster();
    const [a, b] = [c.pod(), c.pod()];
    await c.advance(0);
    const watcher = await c.open(b, "watcher");
    const tabs = [await c.open(a, "ada"), await c.open(a, "ada"), await c.open(b, "ada")];
    await c.quiet();
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada"]);
    const event = dataEvents(watcher.text).find((e) => e.userId === "ada");
    assert.equal(event?.channel, ROOM);
    assert.equal(event?.userName, "ADA");
    assert.match(String(event?.timestamp), /Z$/);
    assert.equal(a.presence.usersOnline, 1);
    assert.equal(b.presence.usersOnline, 2);

    tabs[0]?.hangUp();
    tabs[2]?.hangUp();
    await c.advance(GRACE + 1_000);
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada"], "two tabs gone: nothing");
    tabs[1]?.hangUp();
    await c.advance(GRACE - 250);
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada"], "still within grace");
    await c.advance(500);
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada", "offline ada"]);
    assert.equal(a.presence.usersOnline, 0);
    assert.deepEqual(await usersIn(b.presence, ROOM), [
      { userId: "watcher", userName: "WATCHER", connections: 1 },
    ]);
    await c.advance(3 * GRACE);
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada", "offline ada"], "exactly once");
    await c.close();
  });

  it("a reconnect within the grace period, on another pod, emits nothing at all", async () => {
    const c = cluster();
    const [a, b] = [c.pod(), c.pod()];
    const watcher = await c.open(b, "watcher");
    const first = await c.open(a, "ada");
    await c.quiet();
    first.hangUp();
    await c.advance(2_000);
    await c.open(b, "ada");
    await c.advance(3 * GRACE);
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada"]);
    await c.close();
  });

  it("tracks rooms only: user channels have no presence", async () => {
    const c = cluster();
    const a = c.pod();
    const watcher = await c.open(a, "watcher", ["channel:other" as ChannelName]);
    await c.open(a, "ada", ["user:ada" as ChannelName]);
    await c.open(a, "bo", ["user:bo" as ChannelName, ROOM]);
    await c.quiet();
    assert.deepEqual(await usersIn(a.presence, ROOM), [
      { userId: "bo", userName: "BO", connections: 1 },
    ]);
    assert.deepEqual(await usersIn(a.presence, "user:ada" as ChannelName), []);
    assert.deepEqual(presenceOf(watcher), ["online watcher"]);
    await c.close();
  });

  it("ignores a stream whose peer left while its replay was under way", async () => {
    const c = cluster();
    const a = c.pod();
    const first = new FakeConnection();
    const stream = await a.hub.open({ userId: "bo", channels: [ROOM], connect: () => first });
    const cursor = stream.cursor;
    first.hangUp();
    for (let i = 0; i < 20; i++)
      await a.hub.publish(ROOM, { type: "n", content: "x".repeat(8_000) });
    const slow = new FakeConnection();
    slow.accepting = false; // the replay pauses for a drain that never comes
    const opening = a.hub.open({ userId: "ada", channels: [ROOM], cursor, connect: () => slow });
    await waitUntil(() => slow.queued > 0);
    slow.hangUp();
    await opening.catch(() => {});
    await c.quiet();
    assert.deepEqual(
      (await usersIn(a.presence, ROOM)).filter((u) => u.connections > 0),
      [],
    );
    assert.equal(a.presence.usersOnline, 0);
    await c.close();
  });

  it("a pod that stops heartbeating (crash) has its users reaped by another pod", async () => {
    const c = cluster();
    const [a, b] = [c.pod(), c.pod()];
    await c.advance(0);
    const watcher = await c.open(b, "watcher");
    await c.open(a, "ada");
    await c.open(a, "bo");
    await c.open(b, "bo");
    await c.quiet();
    // a is frozen from here: no heartbeat, its streams never close.
    const started = c.now();
    await c.advance(TTL + REFRESH + 500, [b]);
    assert.deepEqual(presenceOf(watcher).sort(), [
      "offline ada",
      "online ada",
      "online bo",
      "online watcher",
    ]);
    assert.ok(c.now() - started <= 15_000);
    await c.close();
  });

  it("a graceful stop hands over: offline a grace period later, from another pod", async () => {
    const c = cluster();
    const [a, b] = [c.pod(), c.pod()];
    await c.advance(0);
    const watcher = await c.open(b, "watcher");
    await c.open(a, "ada");
    await c.open(a, "bo");
    await c.quiet();
    await a.presence.stop();
    await a.hub.drain(0);
    await c.advance(1_000, [b]);
    await c.open(b, "bo"); // bo reconnected elsewhere within the grace period
    await c.advance(GRACE + REFRESH, [b]);
    assert.deepEqual(presenceOf(watcher).sort(), [
      "offline ada",
      "online ada",
      "online bo",
      "online watcher",
    ]);
    await c.close();
  });

  it("a pod reaped while alive (frozen past the TTL) joins its streams again", async () => {
    const c = cluster();
    const [a, b] = [c.pod(), c.pod()];
    await c.advance(0);
    const watcher = await c.open(b, "watcher");
    await c.open(a, "ada");
    await c.quiet();
    await c.advance(TTL + REFRESH + 500, [b]); // a is paused; b reaps it
    await c.advance(REFRESH); // a wakes up, learns it was reaped, rejoins
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada", "offline ada", "online ada"]);
    assert.deepEqual(
      (await usersIn(b.presence, ROOM)).map((u) => `${u.userId}:${u.connections}`),
      ["ada:1", "watcher:1"],
    );
    await c.close();
  });

  it("counts the events it publishes and retries a failed publish", async () => {
    const c = cluster();
    const a = c.pod();
    let failures = 1;
    const publish = a.hub.publish.bind(a.hub);
    a.hub.publish = (channel, input) => {
      if (input.type === "presence" && failures-- > 0) return Promise.reject(new Error("down"));
      return publish(channel, input);
    };
    const watcher = await c.open(a, "watcher");
    await c.quiet();
    await c.open(a, "ada");
    await c.quiet();
    assert.deepEqual(presenceOf(watcher, "ada"), ["online ada"]);
    assert.deepEqual(c.counted, ["online", "online"]);
    await c.close();
  });
});
