/**
 * `history()` and subscriptions that start after a history page, through the client's public
 * API with a scripted service (fetch answers and a fake EventSource playing the stream). The
 * cursors are real ones (`encodeCursor`), so what the client merges, compares and skips is what
 * it would against the service. The same behaviour against the real service:
 * `subscribe-from-history.service.test.ts`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HistoryPage } from "./history-page.ts";
import { RealtimeHttpError } from "./realtime-http-error.ts";
import { chat, settle, setup } from "./testing/client-fixture.ts";
import {
  cursor,
  idOf,
  json,
  OTHER,
  offsetIn,
  pageBody,
  ROOM,
  scriptedFetch,
  until,
} from "./testing/history-fixture.ts";

describe("client.history()", () => {
  it("asks for the encoded channel with limit and before, with the token, and returns the page", async () => {
    const service = scriptedFetch();
    const { client } = setup({ fetch: service.fetch, getToken: () => "tok" });
    service.answer(json(200, pageBody(4, 5, idOf(ROOM, 4))));
    const page: HistoryPage = await client.history(ROOM, { limit: 2, before: idOf(ROOM, 6) });
    const request = service.requests[0];
    const url = new URL(request?.url ?? "");
    assert.equal(url.origin, "http://rt.test");
    assert.equal(url.pathname, "/api/channels/channel%3Aroom/messages");
    assert.equal(url.searchParams.get("limit"), "2");
    assert.equal(url.searchParams.get("before"), idOf(ROOM, 6));
    assert.equal(new Headers(request?.init?.headers).get("authorization"), "Bearer tok");
    assert.equal(page.channel, ROOM);
    assert.deepEqual(
      page.events.map((e) => [e.id, e.event.content]),
      [
        [idOf(ROOM, 4), "m4"],
        [idOf(ROOM, 5), "m5"],
      ],
    );
    assert.equal(page.cursor, idOf(ROOM, 5));
    assert.equal(page.previous, idOf(ROOM, 4));
    assert.equal(page.reset, undefined);
  });

  it("caps limit at 100, leaves it to the service when not given, and refuses < 1 before asking", async () => {
    const service = scriptedFetch();
    const { client } = setup({ fetch: service.fetch });
    service.answer(json(200, pageBody(1, 1)));
    service.answer(json(200, pageBody(1, 1)));
    await client.history(ROOM, { limit: 500 });
    await client.history("channel:room");
    assert.equal(new URL(service.requests[0]?.url ?? "").searchParams.get("limit"), "100");
    assert.equal(new URL(service.requests[1]?.url ?? "").search, "");
    await assert.rejects(client.history(ROOM, { limit: 0 }), RangeError);
    await assert.rejects(client.history(ROOM, { limit: 1.5 }), RangeError);
    await assert.rejects(client.history("general"), TypeError);
    assert.equal(service.requests.length, 2, "nothing asked for a refused call");
  });

  it("passes reset: epoch_changed through", async () => {
    const service = scriptedFetch();
    const { client } = setup({ fetch: service.fetch });
    const body = { channel: ROOM, events: [], cursor: idOf(ROOM, 3, "epoch-2"), previous: null };
    service.answer(json(200, { ...body, reset: "epoch_changed" }));
    const page = await client.history(ROOM, { before: idOf(ROOM, 9) });
    assert.equal(page.reset, "epoch_changed");
    assert.deepEqual(page.events, []);
  });

  it("rejects a refusal with RealtimeHttpError carrying status, code and Retry-After", async () => {
    const service = scriptedFetch();
    const { client } = setup({ fetch: service.fetch });
    service.answer(json(403, { code: "RT_ERR_FORBIDDEN", message: "not yours" }));
    service.answer(
      json(503, { code: "RT_ERR_BROKER_UNAVAILABLE", message: "later" }, { "retry-after": "2" }),
    );
    service.answer(new Response("<html>bad gateway</html>", { status: 502 }));
    const forbidden = await client.history(ROOM).catch((error: unknown) => error);
    assert.ok(forbidden instanceof RealtimeHttpError);
    assert.deepEqual(
      [forbidden.status, forbidden.code, forbidden.message, forbidden.retryAfterMs],
      [403, "RT_ERR_FORBIDDEN", "not yours", undefined],
    );
    const unavailable = await client.history(ROOM).catch((error: unknown) => error);
    assert.ok(unavailable instanceof RealtimeHttpError);
    assert.deepEqual([unavailable.status, unavailable.retryAfterMs], [503, 2000]);
    const gateway = await client.history(ROOM).catch((error: unknown) => error);
    assert.ok(gateway instanceof RealtimeHttpError);
    assert.deepEqual([gateway.status, gateway.code, gateway.message], [502, undefined, "HTTP 502"]);
  });

  it("rejects an answer that is not a history page, and drops events not of the channel", async () => {
    const service = scriptedFetch();
    const { client } = setup({ fetch: service.fetch });
    service.answer(json(200, { channel: ROOM, events: [], cursor: "nope", previous: null }));
    service.answer(json(200, { channel: ROOM, events: [{ id: 1 }], cursor: idOf(ROOM, 1) }));
    await assert.rejects(client.history(ROOM), /unknown shape/);
    await assert.rejects(client.history(ROOM), /unknown shape/);
    const body = pageBody(1, 2);
    service.answer(
      json(200, {
        ...body,
        events: [
          ...body.events,
          { id: idOf(ROOM, 3), event: chat("channel:elsewhere", "x") },
          { id: idOf(ROOM, 4), event: { channel: ROOM } },
        ],
      }),
    );
    const page = await client.history(ROOM);
    assert.deepEqual(
      page.events.map((e) => e.event.content),
      ["m1", "m2"],
    );
  });
});

describe("subscribe(channel, handlers, { history })", () => {
  it("hands over the page first, then opens the stream at the page's end and skips what the page had", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    service.answer(json(200, pageBody(3, 5, idOf(ROOM, 3))));
    const seen: string[] = [];
    const ids: Array<string | null> = [];
    client.subscribe(
      ROOM,
      {
        onHistory: (page) => seen.push(...page.events.map((e) => `history ${e.event.content}`)),
        onEvent: (event, id) => {
          seen.push(`live ${event.content}`);
          ids.push(id);
        },
      },
      { history: 3 },
    );
    await until("the stream to open", () => sources.all.length === 1);
    assert.equal(new URL(service.requests[0]?.url ?? "").searchParams.get("limit"), "3");
    assert.deepEqual(seen, ["history m3", "history m4", "history m5"]);
    assert.deepEqual(sources.last.channels, [ROOM]);
    assert.equal(sources.last.cursor, idOf(ROOM, 5), "the stream starts at the page's end");

    // A server that (wrongly, or on a rewind) sends the page's last event again: skipped.
    sources.last.open();
    sources.last.ready(cursor({ [ROOM]: 5 }), [ROOM]);
    sources.last.message(chat(ROOM, "m5"), cursor({ [ROOM]: 5 }));
    sources.last.message(chat(ROOM, "m6"), cursor({ [ROOM]: 6 }));
    assert.deepEqual(seen.slice(3), ["live m6"]);
    assert.deepEqual(ids, [idOf(ROOM, 6)], "onEvent gets the event's own id on the channel");
  });

  it("adds the channel's start to a stream open on other channels, keeping their positions", async () => {
    const service = scriptedFetch();
    const { client, sources, transitions } = setup({ fetch: service.fetch });
    client.subscribe(OTHER);
    await settle();
    sources.last.open();
    sources.last.ready(cursor({ [OTHER]: 7 }), [OTHER]);
    sources.last.message(chat(OTHER, "o8"), cursor({ [OTHER]: 8 }));

    service.answer(json(200, pageBody(1, 4)));
    client.subscribe(ROOM, {}, { history: 10 });
    await until("the re-open", () => sources.all.length === 2);
    assert.deepEqual(sources.last.channels, [OTHER, ROOM]);
    assert.equal(offsetIn(sources.last.cursor, OTHER), 8, "the other channel goes on");
    assert.equal(offsetIn(sources.last.cursor, ROOM), 4, "the room starts at the page's end");
    assert.equal(transitions().at(-1), "open→connecting:channels_changed");
  });

  it("re-opens a stream that carries the channel from later than the page (history_handoff), and nobody sees an event twice", async () => {
    const service = scriptedFetch();
    const { client, sources, transitions } = setup({ fetch: service.fetch });
    const first: string[] = [];
    const typed: string[] = [];
    client.subscribe(ROOM, { onEvent: (event) => first.push(String(event.content)) });
    client.on("chat", (event) => typed.push(String(event.content)));
    await settle();
    sources.last.open();
    sources.last.ready(cursor({ [ROOM]: 4 }), [ROOM]);

    // The page is read at offset 5; the stream has already brought 5, 6 and 7 when it lands.
    const release = service.hold();
    const second: string[] = [];
    client.subscribe(
      ROOM,
      {
        onHistory: (page) => second.push(...page.events.map((e) => `h${e.event.content}`)),
        onEvent: (event) => second.push(String(event.content)),
      },
      { history: 2 },
    );
    await until("the history request", () => service.requests.length === 1);
    for (const offset of [5, 6, 7])
      sources.last.message(chat(ROOM, `m${offset}`), cursor({ [ROOM]: offset }));
    release(json(200, pageBody(4, 5)));
    await until("the re-open", () => sources.all.length === 2);
    assert.equal(transitions().at(-1), "open→connecting:history_handoff");
    assert.equal(offsetIn(sources.last.cursor, ROOM), 5, "re-opened from the page's end");

    // The server replays 6 and 7, then goes on live.
    const stream = sources.last;
    stream.open();
    stream.ready(cursor({ [ROOM]: 5 }), [ROOM]);
    for (const offset of [6, 7, 8])
      stream.message(chat(ROOM, `m${offset}`), cursor({ [ROOM]: offset }));
    assert.deepEqual(second, ["hm4", "hm5", "m6", "m7", "m8"]);
    assert.deepEqual(first, ["m5", "m6", "m7", "m8"], "the earlier subscription: each once");
    assert.deepEqual(typed, ["m5", "m6", "m7", "m8"], "type handlers: each once");
  });

  it("does not re-open a stream that carries the channel from before the page: skips up to the page's end instead", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    const first: string[] = [];
    client.subscribe(ROOM, { onEvent: (event) => first.push(String(event.content)) });
    await settle();
    sources.last.open();
    sources.last.ready(cursor({ [ROOM]: 2 }), [ROOM]);

    // The page reaches offset 4; the stream (on a slower pod, say) has not delivered 3 and 4 yet.
    service.answer(json(200, pageBody(3, 4)));
    const second: string[] = [];
    client.subscribe(
      ROOM,
      { onEvent: (event) => second.push(String(event.content)) },
      { history: 2 },
    );
    await until("the page", () => service.requests.length === 1);
    await settle();
    assert.equal(sources.all.length, 1, "no re-open");
    for (const offset of [3, 4, 5])
      sources.last.message(chat(ROOM, `m${offset}`), cursor({ [ROOM]: offset }));
    assert.deepEqual(second, ["m5"]);
    assert.deepEqual(first, ["m3", "m4", "m5"]);
  });

  it("a subscription undone in the same tick (StrictMode) asks for nothing; undone while loading, it attaches nothing", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    client.subscribe(ROOM, {}, { history: 5 }).unsubscribe();
    await settle();
    assert.equal(service.requests.length, 0);

    const release = service.hold();
    const heard: string[] = [];
    const subscription = client.subscribe(
      ROOM,
      { onHistory: () => heard.push("history"), onHistoryError: () => heard.push("error") },
      { history: 5 },
    );
    await until("the request", () => service.requests.length === 1);
    subscription.unsubscribe();
    assert.equal(service.requests[0]?.init?.signal?.aborted, true, "the request is aborted");
    release(json(200, pageBody(1, 1)));
    await settle();
    assert.deepEqual(heard, []);
    assert.equal(sources.all.length, 0, "no stream for an undone subscription");
    assert.deepEqual(client.channels, []);
  });

  it("goes on live from now, after telling onHistoryError, when the page cannot be read", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    service.answer(json(503, { code: "RT_ERR_BROKER_UNAVAILABLE", message: "later" }));
    const errors: unknown[] = [];
    const live: string[] = [];
    client.subscribe(
      ROOM,
      {
        onHistoryError: (error) => errors.push(error),
        onEvent: (event) => live.push(String(event.content)),
      },
      { history: 5 },
    );
    await until("the stream", () => sources.all.length === 1);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof RealtimeHttpError && errors[0].status === 503);
    assert.equal(sources.last.cursor, null, "no start: from now");
    sources.last.open();
    sources.last.message(chat(ROOM, "now"), cursor({ [ROOM]: 9 }));
    assert.deepEqual(live, ["now"]);
  });

  it("a reset of the channel after the handoff reaches onReset, and the events after it flow", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    service.answer(json(200, pageBody(1, 5)));
    const heard: string[] = [];
    client.subscribe(
      ROOM,
      {
        onEvent: (event) => heard.push(String(event.content)),
        onReset: (reason) => heard.push(`reset ${reason}`),
      },
      { history: 5 },
    );
    await until("the stream", () => sources.all.length === 1);
    // The service lost its history meanwhile: a new epoch, whose offsets start again at 1.
    sources.last.open();
    sources.last.reset(ROOM, "epoch_changed");
    sources.last.ready(cursor({ [ROOM]: 0 }, "epoch-2"), [ROOM]);
    sources.last.message(chat(ROOM, "fresh"), cursor({ [ROOM]: 1 }, "epoch-2"));
    assert.deepEqual(heard, ["reset epoch_changed", "fresh"]);
  });

  it("after a reset, events at offsets the subscription had passed are new (unknown_cursor in the same epoch)", async () => {
    const service = scriptedFetch();
    const { client, sources } = setup({ fetch: service.fetch });
    service.answer(json(200, pageBody(1, 5)));
    const heard: string[] = [];
    client.subscribe(
      ROOM,
      {
        onEvent: (event) => heard.push(String(event.content)),
        onReset: (reason) => heard.push(`reset ${reason}`),
      },
      { history: 5 },
    );
    await until("the stream", () => sources.all.length === 1);
    // A service whose history went back without a new epoch: the cursor is ahead of its top.
    sources.last.open();
    sources.last.reset(ROOM, "unknown_cursor");
    sources.last.ready(cursor({ [ROOM]: 2 }), [ROOM]);
    sources.last.message(chat(ROOM, "three"), cursor({ [ROOM]: 3 }));
    assert.deepEqual(heard, ["reset unknown_cursor", "three"]);
  });
});

describe("subscribe(channel, handlers, { from })", () => {
  it("starts at a cursor the app kept, and refuses one that is not of the channel", async () => {
    const { client, sources } = setup();
    assert.throws(() => client.subscribe(ROOM, {}, { from: idOf(OTHER, 3) }), TypeError);
    assert.throws(() => client.subscribe(ROOM, {}, { from: "garbage" }), TypeError);
    assert.throws(
      () => client.subscribe(ROOM, {}, { from: idOf(ROOM, 3), history: 5 }),
      /not both/,
    );
    assert.throws(() => client.subscribe(ROOM, {}, { history: 0 }), RangeError);
    // A cursor of several channels: only this channel's entry is taken.
    client.subscribe(ROOM, {}, { from: cursor({ [OTHER]: 9, [ROOM]: 3 }) });
    await settle();
    assert.equal(sources.last.cursor, idOf(ROOM, 3));
  });
});

describe("the stream waits for history reads in flight", () => {
  it("channels subscribed together with a history start open with it, as one stream", async () => {
    const service = scriptedFetch();
    const { client, sources, timers } = setup({ fetch: service.fetch });
    const release = service.hold();
    client.subscribe(OTHER);
    client.subscribe(ROOM, {}, { history: 5 });
    await until("the history request", () => service.requests.length === 1);
    assert.equal(sources.all.length, 0, "no stream before the page");
    assert.deepEqual(timers.pending, [1000], "waiting at most 1 s");
    release(json(200, pageBody(1, 3)));
    await until("the stream", () => sources.all.length === 1);
    await settle();
    assert.equal(sources.all.length, 1, "one stream");
    assert.deepEqual(sources.last.channels, [OTHER, ROOM]);
    assert.equal(offsetIn(sources.last.cursor, ROOM), 3);
    assert.deepEqual(timers.pending, [], "the hold is over");
  });

  it("a slow page holds the others at most the hold time; the room joins when its page is in", async () => {
    const service = scriptedFetch();
    const { client, sources, timers, transitions } = setup({ fetch: service.fetch });
    const release = service.hold();
    client.subscribe(OTHER);
    client.subscribe(ROOM, {}, { history: 5 });
    await until("the history request", () => service.requests.length === 1);
    timers.fireNext();
    assert.equal(sources.all.length, 1);
    assert.deepEqual(sources.last.channels, [OTHER]);
    sources.last.open();
    release(json(200, pageBody(1, 3)));
    await until("the re-open", () => sources.all.length === 2);
    assert.deepEqual(sources.last.channels, [OTHER, ROOM]);
    assert.equal(offsetIn(sources.last.cursor, ROOM), 3);
    assert.equal(transitions().at(-1), "open→connecting:channels_changed");
  });

  it("a history start undone in the same tick holds nothing", async () => {
    const service = scriptedFetch();
    const { client, sources, timers } = setup({ fetch: service.fetch });
    client.subscribe(OTHER);
    client.subscribe(ROOM, {}, { history: 5 }).unsubscribe();
    await settle();
    assert.equal(sources.all.length, 1);
    assert.deepEqual(timers.requested, []);
    assert.equal(service.requests.length, 0);
  });
});
