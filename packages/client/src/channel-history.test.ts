/**
 * The channel history store through its public API, with a scripted service: the first page
 * then live events, filling past other event types, older pages, the cap on what it keeps, a
 * reset, and a start undone in the same tick.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RealtimeEvent } from "@realtime/protocol";
import { type ChannelHistoryStore, createChannelHistory } from "./channel-history.ts";
import { chat, settle, setup } from "./testing/client-fixture.ts";
import { cursor, idOf, json, ROOM, scriptedFetch, until } from "./testing/history-fixture.ts";

const presence = (userId: string) => ({
  type: "presence",
  channel: ROOM,
  timestamp: "t",
  userId,
  userName: userId,
  status: "online",
});

/** A page of the events at `offsets` (a number is chat `m<n>`, `p<n>` a presence event). */
function page(offsets: Array<number | `p${number}`>, previous: number | null) {
  const events = offsets.map((item) => {
    const presenceEvent = typeof item === "string";
    const offset = presenceEvent ? Number(item.slice(1)) : item;
    return {
      id: idOf(ROOM, offset),
      event: presenceEvent ? presence(`u${offset}`) : chat(ROOM, `m${offset}`),
    };
  });
  const last = offsets.at(-1);
  const end = typeof last === "string" ? Number(last.slice(1)) : (last ?? 0);
  return {
    channel: ROOM,
    events,
    cursor: idOf(ROOM, end),
    previous: previous === null ? null : idOf(ROOM, previous),
  };
}

const contents = (store: ChannelHistoryStore) =>
  store.getSnapshot().events.map(({ event }) => String(event.content ?? event.type));

function started(options: Parameters<typeof createChannelHistory>[2] = {}) {
  const service = scriptedFetch();
  const { client, sources } = setup({ fetch: service.fetch });
  const store = createChannelHistory(client, ROOM, options);
  let renders = 0;
  const stop = store.subscribe(() => renders++);
  return { service, client, sources, store, stop, renders: () => renders };
}

describe("createChannelHistory", () => {
  it("shows the last page, then every live event after it, with the ids on the channel", async () => {
    const { service, sources, store } = started({ limit: 3 });
    service.answer(json(200, page([4, 5, 6], 4)));
    assert.equal(store.getSnapshot().loading, true);
    await until("the stream", () => sources.all.length === 1);
    assert.equal(new URL(service.requests[0]?.url ?? "").searchParams.get("limit"), "3");
    const first = store.getSnapshot();
    assert.deepEqual(contents(store), ["m4", "m5", "m6"]);
    assert.deepEqual([first.loading, first.hasOlder, first.error], [false, true, null]);
    sources.last.open();
    sources.last.message(chat(ROOM, "m7"), cursor({ [ROOM]: 7 }));
    assert.deepEqual(contents(store), ["m4", "m5", "m6", "m7"]);
    assert.equal(store.getSnapshot().events.at(-1)?.id, idOf(ROOM, 7));
    assert.equal(store.getSnapshot(), store.getSnapshot(), "stable between changes");
  });

  it("with types, reads older pages until it has limit such events, at most maxPages", async () => {
    const { service, sources, store } = started({ limit: 3, types: ["chat"], maxPages: 3 });
    service.answer(json(200, page(["p8", 9, "p10"], 8)));
    const second = service.hold();
    service.answer(json(200, page(["p2", 3, "p4"], 2)));
    await until("the second read", () => service.requests.length === 2);
    assert.equal(new URL(service.requests[1]?.url ?? "").searchParams.get("before"), idOf(ROOM, 8));
    // The fill reads older pages itself: asking now adds no read of the same page.
    await store.loadOlder();
    assert.equal(service.requests.length, 2);
    second(json(200, page(["p5", "p6", "p7"], 5)));
    await until("the fill", () => !store.getSnapshot().loading);
    assert.equal(service.requests.length, 3, "three pages, no more, though short of limit");
    assert.deepEqual(contents(store), ["m3", "m9"]);
    assert.equal(store.getSnapshot().hasOlder, true);
    // Live events of other types are left out too.
    sources.last.open();
    sources.last.message(presence("u11"), cursor({ [ROOM]: 11 }));
    sources.last.message(chat(ROOM, "m12"), cursor({ [ROOM]: 12 }));
    assert.deepEqual(contents(store), ["m3", "m9", "m12"]);
  });

  it("stops filling where history ends", async () => {
    const { service, store } = started({ limit: 5, types: ["chat"] });
    service.answer(json(200, page(["p3", 4], 3)));
    service.answer(json(200, page([1, "p2"], null)));
    await until("the fill", () => !store.getSnapshot().loading);
    assert.equal(service.requests.length, 2);
    assert.deepEqual(contents(store), ["m1", "m4"]);
    assert.equal(store.getSnapshot().hasOlder, false);
  });

  it("loadOlder() puts the page before the oldest in front; a reset there means nothing older", async () => {
    const { service, store } = started({ limit: 2 });
    service.answer(json(200, page([5, 6], 5)));
    await until("the page", () => !store.getSnapshot().loading);
    service.answer(json(200, page([3, 4], 3)));
    const loading = store.loadOlder();
    assert.equal(store.getSnapshot().loadingOlder, true);
    await loading;
    assert.deepEqual(contents(store), ["m3", "m4", "m5", "m6"]);
    assert.equal(new URL(service.requests[1]?.url ?? "").searchParams.get("before"), idOf(ROOM, 5));
    service.answer(
      json(200, {
        channel: ROOM,
        events: [],
        cursor: idOf(ROOM, 0, "e2"),
        previous: null,
        reset: "epoch_changed",
      }),
    );
    await store.loadOlder();
    assert.deepEqual(contents(store), ["m3", "m4", "m5", "m6"]);
    assert.deepEqual(
      [store.getSnapshot().hasOlder, store.getSnapshot().loadingOlder],
      [false, false],
    );
    await store.loadOlder();
    assert.equal(service.requests.length, 3, "nothing older to ask for");
  });

  it("keeps an older page's failure as error and lets loadOlder() try again", async () => {
    const { service, store } = started({ limit: 2 });
    service.answer(json(200, page([5, 6], 5)));
    await until("the page", () => !store.getSnapshot().loading);
    service.answer(json(503, { code: "RT_ERR_BROKER_UNAVAILABLE", message: "later" }));
    await store.loadOlder();
    assert.match(String(store.getSnapshot().error), /later/);
    assert.equal(store.getSnapshot().hasOlder, true);
    service.answer(json(200, page([4], null)));
    await store.loadOlder();
    assert.deepEqual(contents(store), ["m4", "m5", "m6"]);
    assert.equal(store.getSnapshot().error, null);
  });

  it("keeps at most maxEvents, and what it pushed out can be read again", async () => {
    const { service, sources, store } = started({ limit: 2, maxEvents: 3 });
    service.answer(json(200, page([1, 2], null)));
    await until("the stream", () => sources.all.length === 1);
    assert.equal(store.getSnapshot().hasOlder, false);
    sources.last.open();
    for (const n of [3, 4]) sources.last.message(chat(ROOM, `m${n}`), cursor({ [ROOM]: n }));
    assert.deepEqual(contents(store), ["m2", "m3", "m4"]);
    assert.equal(store.getSnapshot().hasOlder, true);
    service.answer(json(200, page([1], null)));
    await store.loadOlder();
    assert.equal(new URL(service.requests[1]?.url ?? "").searchParams.get("before"), idOf(ROOM, 2));
    assert.deepEqual(contents(store), ["m1", "m2", "m3", "m4"]);
  });

  it("reads afresh after a reset of the channel", async () => {
    const { service, sources, store } = started({ limit: 2 });
    service.answer(json(200, page([1, 2], null)));
    await until("the stream", () => sources.all.length === 1);
    service.answer(json(200, page([8, 9], 8)));
    sources.last.open();
    sources.last.reset(ROOM, "trimmed");
    assert.equal(store.getSnapshot().loading, true);
    assert.deepEqual(contents(store), []);
    await until("the new page", () => !store.getSnapshot().loading);
    assert.deepEqual(contents(store), ["m8", "m9"]);
  });

  it("goes on live, with the error, when the first page cannot be read", async () => {
    const { service, sources, store } = started();
    service.answer(json(403, { code: "RT_ERR_CHANNEL_FORBIDDEN", message: "no" }));
    await until("the stream", () => sources.all.length === 1);
    const snapshot = store.getSnapshot();
    assert.deepEqual([snapshot.loading, snapshot.hasOlder], [false, false]);
    assert.match(String(snapshot.error), /no/);
    sources.last.open();
    sources.last.message(chat(ROOM, "live"), cursor({ [ROOM]: 3 }));
    assert.deepEqual(contents(store), ["live"]);
  });

  it("started and stopped in one tick (StrictMode), it reads nothing; the last listener stops it", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    const store = createChannelHistory<RealtimeEvent>(client, ROOM);
    store.subscribe(() => {})();
    const stop = store.subscribe(() => {});
    service.answer(json(200, page([1], null)));
    await until("the stream", () => sources.all.length === 1);
    assert.equal(service.requests.length, 1, "one read");
    stop();
    await settle();
    assert.deepEqual(client.channels, []);
    assert.equal(store.getSnapshot().loading, true, "back to the start");
    assert.throws(() => createChannelHistory(client, "nope"), TypeError);
  });
});
