/**
 * Server-side rendering and frameworks create the client at module scope, where there is no
 * `EventSource`, `window` or `document`: creating it (and reading its state, as a render does)
 * must touch none of them and start nothing — no timer, no listener. The transport is resolved
 * when the client first connects, and only then may a missing `EventSource` be an error.
 *
 * The globals are watched through property traps on `globalThis`, installed only for the
 * synchronous stretch under test, so the test runner itself never meets them.
 */
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { EventSource } from "eventsource";
import { withBearerToken } from "./event-source.ts";
import { createRealtimeClient } from "./realtime-client.ts";
import { settle } from "./testing/client-fixture.ts";
import { FakeConnectivity } from "./testing/fake-connectivity.ts";
import { FakeEventSources } from "./testing/fake-event-source.ts";
import { untilClient } from "./testing/until-client.ts";

/** What a browser-only or clock-using client would reach for. */
const WATCHED = [
  "EventSource",
  "window",
  "document",
  "navigator",
  "addEventListener",
  "removeEventListener",
  "setTimeout",
  "setInterval",
  "setImmediate",
  "queueMicrotask",
  "fetch",
] as const;

/**
 * Runs `body` with every {@link WATCHED} global behind a getter that records its name (and
 * still answers as before), then restores them; returns the names `body` reached for.
 */
function touchedBy(body: () => void): string[] {
  const touched: string[] = [];
  const saved = new Map<string, PropertyDescriptor | undefined>();
  for (const name of WATCHED) {
    const descriptor = Object.getOwnPropertyDescriptor(globalThis, name);
    saved.set(name, descriptor);
    const read = descriptor?.get ?? (() => descriptor?.value);
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        touched.push(name);
        return read.call(globalThis);
      },
    });
  }
  try {
    body();
  } finally {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete (globalThis as Record<string, unknown>)[name];
    }
  }
  return touched;
}

const timeouts = () =>
  process.getActiveResourcesInfo().filter((kind) => kind === "Timeout" || kind === "Immediate");

describe("a client created where there is no browser (SSR, module scope)", () => {
  it("is created and read without touching EventSource, window, navigator, timers or fetch", () => {
    assert.equal(typeof globalThis.EventSource, "undefined", "Node has no global EventSource");
    const before = timeouts();
    const touched = touchedBy(() => {
      const client = createRealtimeClient({ url: "https://rt.example.com" });
      // What a server render reads: useConnectionState's snapshot and subscription.
      assert.equal(client.state, "closed");
      assert.deepEqual(client.getSnapshot(), { state: "closed", change: null });
      assert.deepEqual(client.channels, []);
      assert.equal(client.lastEventId, null);
      client.onStateChange(() => {})();
      client.close();
    });
    assert.deepEqual(touched, []);
    assert.deepEqual(timeouts(), before, "no timer was started");
  });

  it("listens to the network only from the first connection until close", async () => {
    const network = new FakeConnectivity();
    const sources = new FakeEventSources();
    const client = createRealtimeClient({
      url: "https://rt.example.com",
      eventSource: sources.factory,
      online: network,
    });
    assert.equal(network.listeners, 0, "nothing listens before connecting");
    const subscription = client.subscribe("channel:a");
    await settle();
    assert.equal(sources.all.length, 1);
    assert.equal(network.listeners, 1, "listens while connecting");
    subscription.unsubscribe();
    await settle();
    assert.equal(client.state, "closed");
    assert.equal(network.listeners, 0, "the last unsubscribe stops listening");
    client.subscribe("channel:b");
    await settle();
    assert.equal(network.listeners, 1);
    client.close();
    assert.equal(network.listeners, 0, "close() stops listening");
    client.connect();
    assert.equal(network.listeners, 1, "connect() listens again");
    client.close();
  });

  it("says what to pass at the first connect() or subscribe() when there is no EventSource", () => {
    const client = createRealtimeClient({ url: "https://rt.example.com" });
    const clear = { name: "TypeError", message: /no global EventSource: pass `eventSource`/ };
    assert.throws(() => client.connect(), clear);
    assert.throws(() => client.subscribe("channel:a"), clear);
    assert.deepEqual(client.channels, [], "the failed subscribe left nothing behind");
    assert.equal(client.state, "closed");
  });

  it("connects with an injected EventSource (the `eventsource` package) and gets events", async () => {
    const streams: ServerResponse[] = [];
    const server = createServer((request, response) => {
      assert.equal(request.headers.authorization, "Bearer t0k");
      const url = new URL(request.url ?? "/", "http://localhost");
      assert.equal(url.pathname, "/api/events");
      assert.deepEqual(url.searchParams.getAll("channel"), ["channel:a"]);
      response.writeHead(200, { "content-type": "text/event-stream" });
      const event = { type: "chat", channel: "channel:a", timestamp: "t", content: "hi" };
      response.write(`id: 1.a\ndata: ${JSON.stringify(event)}\n\n`);
      streams.push(response);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const client = createRealtimeClient({
      url: `http://127.0.0.1:${port}`,
      eventSource: withBearerToken(EventSource),
      getToken: () => "t0k",
    });
    try {
      const received: string[] = [];
      client.subscribe("channel:a", { onEvent: (event) => received.push(String(event.content)) });
      await untilClient(client, "the event", () => received.length > 0);
      assert.deepEqual(received, ["hi"]);
      assert.equal(client.state, "open");
      assert.equal(client.lastEventId, "1.a");
    } finally {
      client.close();
      for (const response of streams) response.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
