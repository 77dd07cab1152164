import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  applyPresenceEvent,
  parsePresenceSnapshot,
  presenceSnapshotHidden,
} from "./presence-state.ts";
import { createRealtimeClient } from "./realtime-client.ts";
import { createPresenceStore, type PresenceSnapshot } from "./room-presence.ts";
import { FakeConnectivity } from "./testing/fake-connectivity.ts";
import { FakeEventSources } from "./testing/fake-event-source.ts";
import { ManualTimers } from "./testing/manual-timers.ts";

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const presence = (
  userId: string,
  status: "online" | "offline",
  userName = userId,
  version?: number,
) => ({
  type: "presence",
  channel: "channel:room",
  timestamp: "t",
  userId,
  userName,
  status,
  ...(version !== undefined && { version }),
});

describe("presence state", () => {
  it("parses the planned snapshot shape and refuses others", () => {
    const users = parsePresenceSnapshot({
      channel: "channel:room",
      users: [{ userId: "u1", userName: "Ada", connections: 2 }, { userId: "u2" }],
    });
    assert.deepEqual(
      [...(users?.values() ?? [])],
      [
        { userId: "u1", userName: "Ada", connections: 2 },
        { userId: "u2", userName: "u2", connections: 1 },
      ],
    );
    assert.equal(parsePresenceSnapshot({ users: [{ name: "x" }] }), null);
    assert.equal(parsePresenceSnapshot({ code: "RT_ERR_NOT_FOUND" }), null);
    assert.equal(parsePresenceSnapshot(null), null);
  });

  it("counts the users a truncated snapshot leaves out", () => {
    const users = [{ userId: "u1" }, { userId: "u2" }];
    assert.equal(presenceSnapshotHidden({ users, total: 5001, truncated: true }), 4999);
    assert.equal(presenceSnapshotHidden({ users, total: 2, truncated: false }), 0);
    assert.equal(presenceSnapshotHidden({ users }), 0, "a server without the fields");
    assert.equal(presenceSnapshotHidden({ users, total: "9", truncated: true }), 0);
    assert.equal(presenceSnapshotHidden(null), 0);
  });

  it("adds on online, removes on offline, and keeps identity when nothing changes", () => {
    const empty = new Map();
    const one = applyPresenceEvent(empty, { ...presence("u1", "online", "Ada"), type: "presence" });
    assert.deepEqual([...one.values()], [{ userId: "u1", userName: "Ada", connections: 1 }]);
    const same = applyPresenceEvent(one, { ...presence("u1", "online", "Ada"), type: "presence" });
    assert.equal(same, one);
    assert.equal(applyPresenceEvent(one, { ...presence("u9", "offline"), type: "presence" }), one);
    const none = applyPresenceEvent(one, { ...presence("u1", "offline"), type: "presence" });
    assert.equal(none.size, 0);
  });
});

describe("createPresenceStore", () => {
  function setup(respond: (path: string) => Response | Promise<Response>) {
    const sources = new FakeEventSources();
    const paths: string[] = [];
    const client = createRealtimeClient({
      url: "http://rt.test",
      eventSource: sources.factory,
      timers: new ManualTimers(),
      online: new FakeConnectivity(),
      fetch: async (input) => {
        const path = new URL(input).pathname;
        paths.push(path);
        return respond(path);
      },
    });
    const store = createPresenceStore(client, "channel:room");
    const seen: PresenceSnapshot[] = [];
    const stop = store.subscribe(() => seen.push(store.getSnapshot()));
    return { client, sources, store, seen, stop, paths };
  }

  it("joins the snapshot with live events that arrived while it loaded", async () => {
    let release: (response: Response) => void = () => {};
    const { sources, store, paths } = setup(
      () => new Promise<Response>((resolve) => (release = resolve)),
    );
    await settle();
    assert.deepEqual(sources.last.channels, ["channel:room"]);
    assert.deepEqual(paths, [], "no snapshot before the stream carries the channel");
    sources.last.open();
    assert.deepEqual(paths, ["/api/channels/channel%3Aroom/presence"]);
    sources.last.message(presence("u2", "offline"), "1.a");
    sources.last.message(presence("u3", "online", "Cy"), "1.b");
    assert.equal(store.getSnapshot().status, "loading");
    release(
      Response.json({
        channel: "channel:room",
        users: [
          { userId: "u1", userName: "Ada", connections: 1 },
          { userId: "u2", userName: "Bob", connections: 1 },
        ],
      }),
    );
    await settle();
    assert.deepEqual(store.getSnapshot(), {
      channel: "channel:room",
      status: "ready",
      users: [
        { userId: "u1", userName: "Ada", connections: 1 },
        { userId: "u3", userName: "Cy", connections: 1 },
      ],
      hidden: 0,
    });
    sources.last.message(presence("u1", "offline"), "1.c");
    assert.deepEqual(
      store.getSnapshot().users.map((u) => u.userId),
      ["u3"],
    );
  });

  it("drops events the snapshot already has and events overtaken for the same user", async () => {
    let release: (response: Response) => void = () => {};
    const { sources, store } = setup(() => new Promise<Response>((r) => (release = r)));
    await settle();
    sources.last.open();
    // Held while the snapshot loads: u2's offline (v10) is already in the snapshot (v11).
    sources.last.message(presence("u2", "offline", "u2", 10), "1.a");
    sources.last.message(presence("u3", "online", "Cy", 12), "1.b");
    release(
      Response.json({
        channel: "channel:room",
        users: [{ userId: "u1", userName: "Ada", connections: 1 }],
        version: 11,
      }),
    );
    await settle();
    assert.deepEqual(
      store.getSnapshot().users.map((u) => u.userId),
      ["u1", "u3"],
    );
    // Pod B decided u3 offline (v13) then online again (v14), but published in the other order.
    sources.last.message(presence("u3", "online", "Cy", 14), "1.c");
    sources.last.message(presence("u3", "offline", "Cy", 13), "1.d");
    // And an event older than the snapshot, published late.
    sources.last.message(presence("u1", "offline", "Ada", 9), "1.e");
    assert.deepEqual(
      store.getSnapshot().users.map((u) => u.userId),
      ["u1", "u3"],
      "u3 stays online and u1 stays: both offlines were stale",
    );
    sources.last.message(presence("u1", "offline", "Ada", 15), "1.f");
    assert.deepEqual(
      store.getSnapshot().users.map((u) => u.userId),
      ["u3"],
    );
  });

  it("a very large room: the listed users, the rest counted in hidden, lowered as they leave", async () => {
    let release: (response: Response) => void = () => {};
    const { sources, store } = setup(() => new Promise<Response>((r) => (release = r)));
    await settle();
    sources.last.open();
    // Held while loading: an unlisted user (u7) leaves after the snapshot was taken.
    sources.last.message(presence("u7", "offline", "Gus", 21), "1.a");
    release(
      Response.json({
        channel: "channel:room",
        users: [
          { userId: "u1", userName: "Ada", connections: 1 },
          { userId: "u2", userName: "Bob", connections: 1 },
        ],
        total: 5000,
        truncated: true,
        version: 20,
      }),
    );
    await settle();
    assert.deepEqual(
      { users: store.getSnapshot().users.length, hidden: store.getSnapshot().hidden },
      { users: 2, hidden: 4997 },
    );
    // A listed user leaves: the list shrinks, hidden stays; an unlisted one: hidden shrinks.
    sources.last.message(presence("u1", "offline", "Ada", 22), "1.b");
    sources.last.message(presence("u8", "offline", "Hal", 23), "1.c");
    // Someone new arrives: listed.
    sources.last.message(presence("u9", "online", "Ivy", 24), "1.d");
    const snapshot = store.getSnapshot();
    assert.deepEqual(
      snapshot.users.map((u) => u.userId),
      ["u2", "u9"],
    );
    assert.equal(snapshot.hidden, 4996);
    assert.equal(snapshot.users.length + snapshot.hidden, 4998, "5,000 − 3 left + 1 came");
  });

  it("asks for the snapshot only once the stream carries the channel", async () => {
    const sources = new FakeEventSources();
    const paths: string[] = [];
    const client = createRealtimeClient({
      url: "http://rt.test",
      eventSource: sources.factory,
      timers: new ManualTimers(),
      online: new FakeConnectivity(),
      fetch: async (input) => {
        paths.push(new URL(input).pathname);
        return Response.json({ channel: "x", users: [] });
      },
    });
    client.subscribe("channel:other");
    await settle();
    sources.last.open();
    const store = createPresenceStore(client, "channel:room");
    store.subscribe(() => {});
    await settle();
    assert.equal(client.state, "connecting", "re-opening with the new channel");
    assert.deepEqual(paths, [], "the open stream does not carry the channel yet");
    sources.last.open();
    await settle();
    assert.equal(paths.length, 1);
    // A second store on a channel the open stream already carries loads at once.
    createPresenceStore(client, "channel:other").subscribe(() => {});
    await settle();
    assert.equal(paths.length, 2);
    assert.equal(sources.all.length, 2);
  });

  it("tolerates a server without presence (404): live events only", async () => {
    const { sources, store } = setup(() =>
      Response.json({ code: "RT_ERR_NOT_FOUND", message: "Not found" }, { status: 404 }),
    );
    await settle();
    sources.last.open();
    await settle();
    assert.deepEqual(store.getSnapshot(), {
      channel: "channel:room",
      status: "partial",
      users: [],
      hidden: 0,
      error: "HTTP 404",
    });
    sources.last.message(presence("u1", "online", "Ada"), "1.a");
    assert.deepEqual(store.getSnapshot().users, [
      { userId: "u1", userName: "Ada", connections: 1 },
    ]);
    assert.equal(store.getSnapshot().status, "partial");
  });

  it("reloads the snapshot after a reset, and lets go of the channel when the last listener leaves", async () => {
    let calls = 0;
    const { client, sources, store, stop, paths } = setup(() => {
      calls++;
      const users = calls === 1 ? [{ userId: "u1", userName: "Ada", connections: 1 }] : [];
      return Response.json({ channel: "channel:room", users });
    });
    await settle();
    sources.last.open();
    await settle();
    assert.equal(store.getSnapshot().users.length, 1);
    sources.last.reset("channel:room", "trimmed");
    await settle();
    assert.equal(paths.length, 2);
    assert.deepEqual(store.getSnapshot().users, []);
    stop();
    await settle();
    assert.equal(client.state, "closed");
    assert.equal(store.getSnapshot().status, "loading");
  });
});
