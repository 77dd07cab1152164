/**
 * The client's channel bookkeeping and dispatch, through its public API: one stream for every
 * channel, one re-open per tick of changes, typed events, close()/connect().
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RealtimeEvent } from "@realtime/protocol";
import { createRealtimeClient } from "./realtime-client.ts";
import { chat, settle, setup } from "./testing/client-fixture.ts";
import { FakeConnectivity } from "./testing/fake-connectivity.ts";
import { FakeEventSources } from "./testing/fake-event-source.ts";
import { ManualTimers } from "./testing/manual-timers.ts";

describe("one stream for every channel", () => {
  it("opens one EventSource for several subscribe calls made in one tick", async () => {
    const { client, sources, transitions } = setup();
    client.subscribe("channel:a");
    client.subscribe("channel:b");
    client.subscribe("user:u1");
    assert.equal(sources.all.length, 0, "nothing opens before the tick ends");
    await settle();
    assert.equal(sources.all.length, 1);
    assert.equal(
      sources.last.url,
      "http://rt.test/api/events?channel=channel%3Aa&channel=channel%3Ab&channel=user%3Au1",
    );
    sources.last.open();
    assert.deepEqual(transitions(), ["closed→connecting:subscribed", "connecting→open:opened"]);
  });

  it("re-opens once, with the current cursor, for changes made in one tick while open", async () => {
    const { client, sources, transitions } = setup();
    const a = client.subscribe("channel:a");
    client.subscribe("channel:b");
    await settle();
    sources.last.open();
    sources.last.message(chat("channel:a", "hi"), "1.cursorA");
    a.unsubscribe();
    client.subscribe("channel:c");
    client.subscribe("channel:d");
    await settle();
    assert.equal(sources.all.length, 2);
    assert.ok(sources.all[0]?.closed, "the old stream is closed");
    assert.deepEqual(sources.last.channels, ["channel:b", "channel:c", "channel:d"]);
    assert.equal(sources.last.cursor, "1.cursorA");
    sources.last.open();
    assert.deepEqual(transitions().slice(2), [
      "open→connecting:channels_changed",
      "connecting→open:opened",
    ]);
  });

  it("does not re-open when a tick's changes cancel out (React StrictMode re-mounts)", async () => {
    const { client, sources } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.open();
    client.subscribe("channel:b").unsubscribe();
    const again = client.subscribe("channel:a");
    again.unsubscribe();
    await settle();
    assert.equal(sources.all.length, 1);
    assert.equal(client.state, "open");
  });

  it("keeps a channel while any subscription holds it, and closes when the last one goes", async () => {
    const { client, sources, transitions } = setup();
    const first = client.subscribe("channel:a");
    const second = client.subscribe("channel:a");
    await settle();
    sources.last.open();
    first.unsubscribe();
    first.unsubscribe(); // idempotent: must not release the second subscription
    await settle();
    assert.equal(sources.all.length, 1);
    assert.equal(sources.last.closed, false);
    second.unsubscribe();
    await settle();
    assert.equal(sources.last.closed, true);
    assert.deepEqual(transitions().at(-1), "open→closed:unsubscribed");
  });

  it("refuses invalid channel names at once", () => {
    const { client } = setup();
    assert.throws(() => client.subscribe("general"), TypeError);
    assert.throws(() => client.subscribe("channel:a b"), /invalid channel/);
  });
});

describe("events", () => {
  it("dispatches by channel and by type, drops control-looking junk and unsubscribed channels", async () => {
    interface Chat extends RealtimeEvent {
      type: "chat";
      content: string;
    }
    const sources = new FakeEventSources();
    const client = createRealtimeClient<{ chat: Chat; typing: RealtimeEvent }>({
      url: "http://rt.test",
      eventSource: sources.factory,
      timers: new ManualTimers(),
      online: new FakeConnectivity(),
    });
    const onA: string[] = [];
    const chats: string[] = [];
    const all: string[] = [];
    const resets: string[] = [];
    const channelResets: string[] = [];
    const a = client.subscribe("channel:a", {
      onEvent: (event) => onA.push(event.type),
      onReset: (reason) => channelResets.push(reason),
    });
    client.subscribe("channel:b");
    client.on("chat", (event) => chats.push(event.content));
    client.onEvent((event) => all.push(`${event.channel}/${event.type}`));
    client.onReset((channel, reason) => resets.push(`${channel}:${reason}`));
    await settle();
    const source = sources.last;
    source.open();
    source.message(chat("channel:a", "one"), "1.x1");
    source.message({ type: "typing", channel: "channel:b", timestamp: "t" }, "1.x2");
    source.message(chat("channel:b", "two"), "1.x3");
    source.message({ nope: true }, "1.x4");
    source.reset("channel:a", "trimmed");
    a.unsubscribe();
    // Until the stream re-opens it still carries channel:a; nobody hears it any more.
    source.message(chat("channel:a", "late"), "1.x5");
    source.reset("channel:a", "gap");
    assert.deepEqual(onA, ["chat"]);
    assert.deepEqual(chats, ["one", "two"]);
    assert.deepEqual(all, ["channel:a/chat", "channel:b/typing", "channel:b/chat"]);
    assert.deepEqual(resets, ["channel:a:trimmed"]);
    assert.deepEqual(channelResets, ["trimmed"]);
    assert.equal(client.lastEventId, "1.x5", "the cursor still advances");
  });

  it("ignores whatever a replaced EventSource still delivers", async () => {
    const { client, sources } = setup();
    const seen: string[] = [];
    client.subscribe("channel:a", { onEvent: (event) => seen.push(String(event.content)) });
    await settle();
    const old = sources.last;
    old.open();
    client.subscribe("channel:b");
    await settle();
    old.message(chat("channel:a", "stale"), "1.stale");
    old.drop();
    assert.deepEqual(seen, []);
    assert.equal(client.lastEventId, null);
    assert.equal(client.state, "connecting");
    assert.equal(sources.all.length, 2);
  });
});

describe("close() and connect()", () => {
  it("stays closed until connect(), keeping the subscriptions", async () => {
    const { client, sources, timers } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.drop();
    client.close();
    assert.deepEqual(timers.pending, []);
    assert.equal(client.state, "closed");
    client.subscribe("channel:b");
    await settle();
    assert.equal(sources.all.length, 1);
    client.connect();
    assert.deepEqual(sources.last.channels, ["channel:a", "channel:b"]);
    assert.equal(client.state, "connecting");
  });

  it("keeps one snapshot object between transitions", async () => {
    const { client, sources } = setup();
    const initial = client.getSnapshot();
    assert.deepEqual(initial, { state: "closed", change: null });
    assert.equal(client.getSnapshot(), initial);
    client.subscribe("channel:a");
    await settle();
    const connecting = client.getSnapshot();
    assert.notEqual(connecting, initial);
    sources.last.message(chat("channel:a", "x"), "1.a");
    assert.equal(client.getSnapshot(), connecting);
  });
});

describe("listeners that re-enter the client", () => {
  it("close() from a state listener cancels what the transition was about to do", async () => {
    const { client, sources, timers } = setup();
    client.onStateChange((change) => {
      if (change.reason === "transport_error" || change.reason === "channels_changed") {
        client.close();
      }
    });
    client.subscribe("channel:a");
    await settle();
    sources.last.drop();
    assert.deepEqual(timers.pending, [], "the retry timer was cancelled");
    assert.equal(client.state, "closed");
    client.connect();
    sources.last.open();
    client.subscribe("channel:b");
    await settle();
    assert.equal(sources.all.length, 2, "no stream opened for the change");
    assert.equal(client.state, "closed");
  });
});

describe("channels the server withdraws (close 3503 naming them)", () => {
  it("drops them, tells their subscriptions, and re-opens at once with the rest and the cursor", async () => {
    const { client, sources, transitions } = setup();
    const denied: string[] = [];
    client.subscribe("channel:a");
    client.subscribe("channel:b", { onDenied: () => denied.push("channel:b") });
    await settle();
    sources.last.open();
    sources.last.message(chat("channel:a", "hi"), "1.cursorA");
    sources.last.serverClose(3503, "forbidden", ["channel:b"]);
    assert.deepEqual(denied, ["channel:b"]);
    assert.equal(sources.all.length, 2, "re-opened without a backoff");
    assert.deepEqual(sources.last.channels, ["channel:a"]);
    assert.equal(sources.last.cursor, "1.cursorA");
    assert.deepEqual(transitions().slice(2), ["open→connecting:channels_denied"]);
    // Another subscription change keeps the withdrawn channel out.
    client.subscribe("channel:c");
    await settle();
    assert.deepEqual(sources.last.channels, ["channel:a", "channel:c"]);
    // connect() asks for it again (e.g. once the app knows access was granted back).
    client.close();
    client.connect();
    assert.deepEqual(sources.last.channels, ["channel:a", "channel:b", "channel:c"]);
  });

  it("closes (stop-channels) when every channel was withdrawn; a new subscription starts again", async () => {
    const { client, sources, transitions } = setup();
    const only = client.subscribe("channel:only");
    await settle();
    sources.last.open();
    sources.last.serverClose(3503, "forbidden", ["channel:only"]);
    assert.equal(client.state, "closed");
    assert.deepEqual(transitions().at(-1), "open→closed:channels_denied");
    only.unsubscribe();
    client.subscribe("channel:only");
    await settle();
    assert.equal(sources.all.length, 2);
    assert.deepEqual(sources.last.channels, ["channel:only"]);
  });

  it("a 3503 that names none of the stream's channels is the plain terminal close", async () => {
    const { client, sources } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.open();
    sources.last.serverClose(3503, "forbidden", ["channel:zzz"]);
    assert.equal(client.state, "closed");
    assert.equal(sources.all.length, 1);
  });
});

/**
 * What the real service cannot show (realtime-client.service.test.ts has the rest): it refuses
 * a form or URL-encoded body (415) before it looks at the token, and Node's fetch keeps no
 * cookie. Here a fake `fetch` plays the service: 401 `RT_ERR_TOKEN_EXPIRED` until renewed.
 */
describe("request() renews expired credentials: what only a fake service shows", () => {
  function expiringService() {
    const calls: { authorization: string | null; body: string }[] = [];
    let renewed = false;
    const fetch = async (_input: string, init: RequestInit = {}) => {
      const body = init.body ? await new Response(init.body).text() : "";
      calls.push({ authorization: new Headers(init.headers).get("authorization"), body });
      if (renewed) return new Response(null, { status: 204 });
      return Response.json({ code: "RT_ERR_TOKEN_EXPIRED", message: "expired" }, { status: 401 });
    };
    return {
      fetch,
      calls,
      renew: () => {
        renewed = true;
      },
    };
  }

  it("sends a URLSearchParams, FormData or ArrayBuffer body again, the same", async () => {
    const form = new FormData();
    form.set("content", "hello");
    const bodies: [string, () => BodyInit][] = [
      ["URLSearchParams", () => new URLSearchParams({ content: "hello" })],
      ["FormData", () => form],
      ["ArrayBuffer", () => new TextEncoder().encode("hello").buffer],
    ];
    for (const [kind, body] of bodies) {
      const service = expiringService();
      const { client } = setup({ fetch: service.fetch, onTokenExpired: service.renew });
      const response = await client.request("/api/x", { method: "POST", body: body() });
      assert.equal(response.status, 204, kind);
      assert.equal(service.calls.length, 2, kind);
      assert.ok(service.calls[0]?.body.includes("hello"), kind);
      // A multipart body's boundary is drawn afresh for each send; the part is the same.
      if (kind !== "FormData") assert.equal(service.calls[1]?.body, service.calls[0]?.body, kind);
      else assert.ok(service.calls[1]?.body.includes("hello"), kind);
    }
  });

  it("with the cookie only (no getToken): renews with onTokenExpired and sends once more", async () => {
    const service = expiringService();
    let refreshes = 0;
    const { client } = setup({
      fetch: service.fetch,
      onTokenExpired: () => {
        refreshes++;
        service.renew();
      },
    });
    const response = await client.request("/api/x");
    assert.equal(response.status, 204);
    assert.equal(refreshes, 1);
    assert.deepEqual(
      service.calls.map((c) => c.authorization),
      [null, null],
    );
  });

  it("with nothing to renew with (no getToken, no onTokenExpired): returns the 401", async () => {
    const service = expiringService();
    const { client } = setup({ fetch: service.fetch });
    const response = await client.request("/api/x");
    assert.equal(response.status, 401);
    assert.equal((await response.json()).code, "RT_ERR_TOKEN_EXPIRED");
    assert.equal(service.calls.length, 1);
  });

  it("a browser stream's refusal probe is not sent again: the stream renews once and reopens", async () => {
    const service = expiringService();
    let refreshes = 0;
    const { client, sources, transitions } = setup({
      fetch: service.fetch,
      onTokenExpired: () => {
        refreshes++;
        service.renew();
      },
    });
    client.subscribe("user:u1");
    await settle();
    sources.last.refuse(); // no status, like a browser: the client asks with fetch
    await settle();
    assert.equal(service.calls.length, 1, "the probe went out once");
    assert.equal(refreshes, 1);
    assert.equal(sources.all.length, 2);
    sources.last.open();
    assert.deepEqual(transitions(), [
      "closed→connecting:subscribed",
      "connecting→reconnecting:token_expired",
      "reconnecting→open:opened",
    ]);
  });
});
