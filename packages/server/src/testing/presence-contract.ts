/**
 * The contract every {@link PresenceStore} must meet, as one shared suite: the memory store
 * runs it in `memory-presence-store.test.ts`, the Redis store against a single Redis and a
 * 3-master Cluster in `@realtime/redis`.
 *
 * Time is passed to every call, so grace periods and TTLs are tested without waiting.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import type {
  PresenceChange,
  PresenceStore,
  PresenceTimings,
  PresenceTransition,
} from "../presence-store.ts";

export interface PresenceFixture {
  /** A new pod on the fixture's backend, with the given timings. */
  pod(): PresenceStore;
  teardown(): Promise<void>;
}

/** Timings the suite uses (the fixture's stores must be built with them). */
export const CONTRACT_TIMINGS: PresenceTimings = { graceMs: 5_000, ttlMs: 10_000 };
const { graceMs: GRACE, ttlMs: TTL } = CONTRACT_TIMINGS;
const T0 = 1_800_000_000_000;

const join = (channel: ChannelName, streamId: string, userId: string, userName = userId) =>
  ({ kind: "join", channel, streamId, userId, userName }) as const satisfies PresenceChange;
const leave = (channel: ChannelName, streamId: string) =>
  ({ kind: "leave", channel, streamId }) as const satisfies PresenceChange;
const brief = (transitions: readonly PresenceTransition[]) =>
  transitions.map((t) => `${t.status} ${t.userId}@${t.channel}`);
/** Transitions without their versions (checked on their own). */
const plain = (transitions: readonly PresenceTransition[]) =>
  transitions.map(({ version: _, ...rest }) => rest);
const usersIn = async (store: PresenceStore, channel: ChannelName) =>
  (await store.snapshot(channel)).users;

export function runPresenceContract(name: string, setup: () => Promise<PresenceFixture>): void {
  const withFixture = async (body: (f: PresenceFixture) => Promise<void>) => {
    const fixture = await setup();
    try {
      await body(fixture);
    } finally {
      await fixture.teardown();
    }
  };
  let n = 0;
  const channel = () => `channel:presence_${process.pid}_${n++}` as ChannelName;
  /** Two live pods that heartbeated at T0. */
  const twoPods = async (f: PresenceFixture) => {
    const [a, b] = [f.pod(), f.pod()];
    assert.deepEqual(await a.heartbeat(T0), { lost: false }, "a first heartbeat is never lost");
    assert.deepEqual(await b.heartbeat(T0), { lost: false });
    return { a, b };
  };

  describe(`${name}: PresenceStore contract`, () => {
    it("online once for a user's first connection, whatever the tab or pod", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        const first = await a.apply([join(x, "1", "u1", "Ada")], T0);
        assert.deepEqual(plain(first.transitions), [
          { channel: x, userId: "u1", userName: "Ada", status: "online" },
        ]);
        const more = await a.apply([join(x, "2", "u1", "Ada")], T0);
        const other = await b.apply([join(x, "1", "u1", "Ada"), join(x, "2", "u2", "Bo")], T0);
        assert.deepEqual(brief(more.transitions), []);
        assert.deepEqual(brief(other.transitions), [`online u2@${x}`]);
        assert.deepEqual(await usersIn(b, x), [
          { userId: "u1", userName: "Ada", connections: 3 },
          { userId: "u2", userName: "Bo", connections: 1 },
        ]);
      }));

    it("never reports online twice when pods join one user at the same time", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
        const results = await Promise.all(
          users.flatMap((u) => [a, b].map((pod) => pod.apply([join(x, u, u)], T0))),
        );
        const onlines = results.flatMap((r) => brief(r.transitions));
        assert.deepEqual(onlines.sort(), users.map((u) => `online ${u}@${x}`).sort());
        assert.ok((await usersIn(a, x)).every((u) => u.connections === 2));
      }));

    it("joins and leaves are idempotent per stream and keep channels apart", () =>
      withFixture(async (f) => {
        const { a } = await twoPods(f);
        const [x, y] = [channel(), channel()];
        const r = await a.apply([join(x, "1", "u1"), join(x, "1", "u1"), join(y, "1", "u1")], T0);
        assert.deepEqual(brief(r.transitions).sort(), [`online u1@${x}`, `online u1@${y}`].sort());
        assert.deepEqual(await usersIn(a, x), [{ userId: "u1", userName: "u1", connections: 1 }]);
        const left = await a.apply([leave(x, "1"), leave(x, "1"), leave(x, "nope")], T0);
        assert.equal(left.graces.length, 1, "one grace period, not two");
        assert.deepEqual(await usersIn(a, y), [{ userId: "u1", userName: "u1", connections: 1 }]);
      }));

    it("offline once, only when the last connection's grace period is settled", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        await a.apply([join(x, "1", "u1"), join(x, "2", "u1")], T0);
        await b.apply([join(x, "1", "u1")], T0);
        const two = await a.apply([leave(x, "1"), leave(x, "2")], T0 + 1);
        assert.deepEqual(two, { transitions: [], graces: [] });
        const last = await b.apply([leave(x, "1")], T0 + 2);
        assert.deepEqual(last.transitions, []);
        assert.equal(last.graces.length, 1);
        const grace = last.graces[0];
        assert.equal(grace?.channel, x);
        assert.equal(grace?.userId, "u1");
        assert.equal(grace?.deadline, T0 + 2 + GRACE);
        assert.deepEqual(
          await usersIn(a, x),
          [{ userId: "u1", userName: "u1", connections: 0 }],
          "still online during the grace period",
        );
        assert.deepEqual(plain(await b.settle(last.graces)), [
          { channel: x, userId: "u1", userName: "u1", status: "offline" },
        ]);
        assert.deepEqual(await b.settle(last.graces), [], "settled once");
        assert.deepEqual(await usersIn(a, x), []);
      }));

    it("versions every transition: later decisions are greater, on any pod, and the snapshot has the last", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const [x, y] = [channel(), channel()];
        const before = (await a.snapshot(x)).version;
        const decided: PresenceTransition[] = [];
        const on = await a.apply([join(x, "1", "u1"), join(y, "1", "u1")], T0);
        decided.push(...on.transitions.filter((t) => t.channel === x));
        decided.push(...(await b.apply([join(x, "1", "u2")], T0)).transitions);
        const off = await a.apply([leave(x, "1")], T0 + 1);
        decided.push(...(await a.settle(off.graces)));
        decided.push(...(await a.apply([join(x, "2", "u1")], T0 + GRACE + 2)).transitions);
        assert.deepEqual(brief(decided), [
          `online u1@${x}`,
          `online u2@${x}`,
          `offline u1@${x}`,
          `online u1@${x}`,
        ]);
        const versions = decided.map((t) => t.version);
        for (const v of versions) assert.ok(Number.isSafeInteger(v) && v > before, `${v}`);
        for (let i = 1; i < versions.length; i++) {
          assert.ok(versions[i]! > versions[i - 1]!, `increasing: ${versions.join(", ")}`);
        }
        const snap = await b.snapshot(x);
        assert.ok(snap.version >= versions.at(-1)!, "the snapshot reflects every decided one");
        assert.deepEqual(
          snap.users.map((u) => u.userId),
          ["u1", "u2"],
        );
        // A reaped pod's offlines are versioned too, above everything before.
        await b.heartbeat(T0 + GRACE + 2);
        const reaped = await b.reap(T0 + GRACE + 3 + TTL);
        assert.deepEqual(brief(reaped.transitions).sort(), [`offline u1@${x}`, `offline u1@${y}`]);
        const xOff = reaped.transitions.find((t) => t.channel === x);
        assert.ok(xOff && xOff.version > snap.version);
        assert.ok((await b.snapshot(x)).version >= xOff.version);
      }));

    it("a connection back within the grace period cancels it: no event at all", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        await a.apply([join(x, "1", "u1", "Ada")], T0);
        const left = await a.apply([leave(x, "1")], T0 + 100);
        const back = await b.apply([join(x, "9", "u1", "Ada L.")], T0 + 200);
        assert.deepEqual(back.transitions, []);
        assert.deepEqual(await a.settle(left.graces), []);
        assert.deepEqual(await usersIn(a, x), [
          { userId: "u1", userName: "Ada L.", connections: 1 },
        ]);
        // Leaving again starts a new grace period; the old token stays void.
        const again = await b.apply([leave(x, "9")], T0 + 300);
        assert.deepEqual(await a.settle(left.graces), []);
        assert.deepEqual(brief(await b.settle(again.graces)), [`offline u1@${x}`]);
      }));

    it("reaps a pod silent past the TTL: offline for users it alone held", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const [x, y] = [channel(), channel()];
        await a.apply([join(x, "1", "u1"), join(x, "2", "u2"), join(y, "1", "u1")], T0);
        await b.apply([join(x, "1", "u2")], T0);
        await b.heartbeat(T0 + TTL);
        assert.deepEqual(await b.reap(T0 + TTL), { transitions: [], graces: [] }, "not yet");
        await b.heartbeat(T0 + TTL + 1);
        const reaped = await b.reap(T0 + TTL + 1);
        assert.deepEqual(brief(reaped.transitions).sort(), [`offline u1@${x}`, `offline u1@${y}`]);
        assert.deepEqual(await usersIn(b, x), [{ userId: "u2", userName: "u2", connections: 1 }]);
        assert.deepEqual(await usersIn(b, y), []);
        assert.deepEqual(await b.reap(T0 + TTL + 5_000), { transitions: [], graces: [] });
      }));

    it("a heartbeat keeps a pod's entries; a pod never reaps itself", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        await a.apply([join(x, "1", "u1")], T0);
        await a.heartbeat(T0 + TTL - 1);
        await b.heartbeat(T0 + TTL + 5);
        assert.deepEqual((await b.reap(T0 + TTL + 5)).transitions, []);
        assert.deepEqual((await a.reap(T0 + 3 * TTL)).transitions, [], "not itself");
        assert.equal((await usersIn(a, x)).length, 1);
      }));

    it("hands a dead pod's grace periods to the reaper, deadline kept", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        await a.apply([join(x, "1", "u1"), join(x, "2", "u2")], T0);
        const left = await a.apply([leave(x, "1")], T0 + 1);
        const late = T0 + TTL + 10;
        await b.heartbeat(late);
        const reaped = await b.reap(late);
        assert.deepEqual(brief(reaped.transitions), [`offline u2@${x}`]);
        assert.equal(reaped.graces.length, 1);
        assert.equal(reaped.graces[0]?.userId, "u1");
        assert.equal(reaped.graces[0]?.deadline, left.graces[0]?.deadline);
        assert.deepEqual(await a.settle(left.graces), [], "the dead pod's token is void");
        assert.deepEqual(brief(await b.settle(reaped.graces)), [`offline u1@${x}`]);
        assert.deepEqual(await usersIn(b, x), []);
      }));

    it("concurrent reapers report each offline once", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const c = f.pod();
        await c.heartbeat(T0);
        const x = channel();
        await a.apply(
          Array.from({ length: 20 }, (_, i) => join(x, `${i}`, `u${i}`)),
          T0,
        );
        const late = T0 + TTL + 1;
        await Promise.all([b.heartbeat(late), c.heartbeat(late)]);
        const results = await Promise.all([b.reap(late), c.reap(late), b.reap(late)]);
        assert.equal(results.flatMap((r) => r.transitions).length, 20);
      }));

    it("a pod reaped while alive learns it from its next heartbeat and can rejoin", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        await a.apply([join(x, "1", "u1")], T0);
        const late = T0 + TTL + 1;
        await b.heartbeat(late);
        assert.deepEqual(brief((await b.reap(late)).transitions), [`offline u1@${x}`]);
        // a joins another stream before its heartbeat: it must still hear that it was reaped.
        await a.apply([join(x, "2", "u2")], late);
        const beat = await a.heartbeat(late + 1);
        assert.equal(beat.lost, true);
        // A store may reap what it still holds of the pod (entries of unknown age) on its own:
        // then only into grace periods, which the rejoin cancels — nobody goes offline.
        assert.deepEqual(beat.reaped?.transitions ?? [], []);
        assert.deepEqual(await a.heartbeat(late + 2), { lost: false }, "told once");
        const rejoined = await a.apply([join(x, "1", "u1"), join(x, "2", "u2")], late + 3);
        assert.deepEqual(brief(rejoined.transitions), [`online u1@${x}`]);
        assert.deepEqual(await a.settle(beat.reaped?.graces ?? []), [], "graces cancelled");
      }));

    it("a retired pod is reaped one grace period later", () =>
      withFixture(async (f) => {
        const { a, b } = await twoPods(f);
        const x = channel();
        await a.apply([join(x, "1", "u1"), join(x, "2", "u2")], T0);
        await b.apply([join(x, "1", "u2")], T0);
        await a.retire(T0 + 1_000);
        await b.heartbeat(T0 + 1_000 + GRACE);
        assert.deepEqual((await b.reap(T0 + 1_000 + GRACE)).transitions, []);
        await b.heartbeat(T0 + 1_001 + GRACE);
        const reaped = await b.reap(T0 + 1_001 + GRACE);
        assert.deepEqual(brief(reaped.transitions), [`offline u1@${x}`]);
      }));

    it("snapshots are sorted by user id and empty for an unknown channel", () =>
      withFixture(async (f) => {
        const { a } = await twoPods(f);
        const x = channel();
        assert.deepEqual(await usersIn(a, x), []);
        await a.apply(
          ["u3", "u1", "u2"].map((u) => join(x, u, u, `name ${u}`)),
          T0,
        );
        assert.deepEqual(
          (await usersIn(a, x)).map((u) => u.userId),
          ["u1", "u2", "u3"],
        );
        assert.equal((await usersIn(a, x))[0]?.userName, "name u1");
      }));
  });
}
