/**
 * The client against the real service, in Node, over real sockets with the `eventsource`
 * package and a bearer token. The retry timers are manual so the test decides when the client's
 * backoff ends (e.g. only after events were posted while the server was down); everything else
 * is awaited with a deadline, never slept for.
 */
import assert from "node:assert/strict";
import { type AddressInfo, connect, createServer } from "node:net";
import { describe, it } from "node:test";
import { MemoryBroker, MemoryBus } from "@realtime/server";
import type { Service } from "@realtime/service";
import { startService } from "@realtime/testkit/service";
import { EventSource } from "eventsource";
import type { RealtimeClient } from "./client-api.ts";
import type { StateChange } from "./connection-state.ts";
import { withBearerToken } from "./event-source.ts";
import { createRealtimeClient } from "./realtime-client.ts";
import { ManualTimers } from "./testing/manual-timers.ts";
import { untilClient } from "./testing/until-client.ts";

const ROOM = "channel:room";
const WAIT_MS = 5000;

const until = (client: RealtimeClient, what: string, check: () => boolean) =>
  untilClient(client, what, check, WAIT_MS);

function publish(service: Service, content: string) {
  return service.hub.publish(ROOM, { type: "chat", content });
}

describe("client against the real service", { timeout: 60_000 }, () => {
  it("reconnects by itself across a restart on the same port and gets every event once", async () => {
    const bus = new MemoryBus();
    const first = await startService({}, { broker: new MemoryBroker({ bus }) });
    const { token } = await first.login("Ada");
    const timers = new ManualTimers();
    const client = createRealtimeClient({
      url: first.url,
      eventSource: withBearerToken(EventSource),
      getToken: () => token,
      timers,
      random: () => 0.5,
    });
    const changes: StateChange[] = [];
    client.onStateChange((change) => changes.push(change));
    const received: string[] = [];
    // Only chat: the server may add its own events (presence) to the room.
    client.subscribe(ROOM, {
      onEvent: (event) => {
        if (event.type === "chat") received.push(String(event.content));
      },
    });
    const resets: string[] = [];
    client.onReset((channel, reason) => resets.push(`${channel}:${reason}`));
    let second: Service | undefined;
    try {
      await until(client, "the stream to open", () => client.state === "open");
      for (const n of [1, 2, 3]) await publish(first.service, `before ${n}`);
      await until(client, "3 events", () => received.length >= 3);

      await first.stop();
      await until(client, "the shutdown close", () =>
        changes.some((c) => c.reason === "server_close" && c.closeCode === 3001),
      );
      assert.equal(client.state, "reconnecting");
      assert.deepEqual(timers.pending, [500]);

      // The backoff ends while nothing listens on the port: refused, so the client backs off.
      timers.fireNext();
      await until(client, "the refused attempt", () => changes.length === 4);
      assert.equal(changes.at(-1)?.reason, "transport_error");
      assert.deepEqual(timers.pending, [1000]);

      second = (await startService({}, { port: first.port, broker: new MemoryBroker({ bus }) }))
        .service;
      for (const n of [1, 2, 3]) await publish(second, `while away ${n}`);
      assert.equal(received.length, 3, "nothing arrives before the client is back");

      timers.fireNext();
      await until(client, "the stream to reopen", () => client.state === "open");
      await until(client, "the replay", () => received.length >= 6);
      await publish(second, "after");
      await until(client, "the live event", () => received.includes("after"));

      assert.deepEqual(received, [
        "before 1",
        "before 2",
        "before 3",
        "while away 1",
        "while away 2",
        "while away 3",
        "after",
      ]);
      assert.deepEqual(resets, [], "resumed from the cursor, no reset");
      assert.deepEqual(
        changes.map((c) => `${c.to}:${c.reason}`),
        [
          "connecting:subscribed",
          "open:opened",
          "reconnecting:server_close",
          "reconnecting:transport_error",
          "open:opened",
        ],
      );
    } finally {
      client.close();
      await second?.shutdown(0);
      await first.stop();
    }
  });

  it("stops, without retrying, when the server refuses the token", async () => {
    const svc = await startService();
    const timers = new ManualTimers();
    const client = createRealtimeClient({
      url: svc.url,
      eventSource: withBearerToken(EventSource),
      getToken: () => "not-a-token",
      onTokenExpired: () => {},
      timers,
    });
    try {
      client.subscribe(ROOM);
      await until(client, "the refusal", () => client.getSnapshot().change?.to === "closed");
      const last = client.getSnapshot().change;
      assert.equal(last?.reason, "http_error");
      assert.equal(last?.httpStatus, 401);
      assert.deepEqual(timers.requested, [], "no backoff timer: a refusal is final");
    } finally {
      client.close();
      await svc.stop();
    }
  });

  it("backs off and retries when stream opens are rate-limited (429), and opens once the window passed", async () => {
    const WINDOW_MS = 1000;
    const svc = await startService({
      RATE_LIMIT_STREAMS_MAX: "1",
      RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
    });
    const { token } = await svc.login("Ada");
    const timers = new ManualTimers();
    const client = createRealtimeClient({
      url: svc.url,
      eventSource: withBearerToken(EventSource),
      getToken: () => token,
      timers,
      random: () => 0.5,
    });
    const changes: StateChange[] = [];
    client.onStateChange((change) => changes.push(change));
    try {
      // Another tab of the same user spent the window's one open.
      const other = await fetch(`${svc.url}/api/events?channel=${ROOM}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(other.status, 200);
      await other.body?.cancel();

      client.subscribe(ROOM);
      await until(client, "the refusal", () => changes.at(-1)?.to === "reconnecting");
      assert.equal(changes.at(-1)?.reason, "http_error");
      assert.equal(changes.at(-1)?.httpStatus, 429);
      assert.deepEqual(timers.pending, [500], "a backoff timer, not a stop");

      // Retried inside the window: refused again, and the backoff grows.
      timers.fireNext();
      await until(client, "the second refusal", () => changes.length === 3);
      assert.equal(changes.at(-1)?.httpStatus, 429);
      assert.deepEqual(timers.pending, [1000]);

      // No event marks the end of a fixed window: wait it out, then let the backoff end.
      await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
      timers.fireNext();
      await until(client, "the stream to open", () => client.state === "open");
    } finally {
      client.close();
      await svc.stop();
    }
  });

  it("gets a fresh token when the server closes with token_expired, and carries on", async () => {
    const svc = await startService({ TOKEN_TTL_SECONDS: "2" });
    let { token } = await svc.login("Ada");
    let refreshes = 0;
    const client = createRealtimeClient({
      url: svc.url,
      eventSource: withBearerToken(EventSource),
      getToken: () => token,
      onTokenExpired: async () => {
        refreshes++;
        ({ token } = await svc.login("Ada"));
      },
      timers: new ManualTimers(),
    });
    const received: string[] = [];
    // Only chat: the server may add its own events (presence) to the room.
    client.subscribe(ROOM, {
      onEvent: (event) => {
        if (event.type === "chat") received.push(String(event.content));
      },
    });
    try {
      await until(client, "the stream to open", () => client.state === "open");
      await publish(svc.service, "one");
      await until(client, "the first event", () => received.length === 1);
      await until(
        client,
        "the expiry and the reconnect",
        () => refreshes === 1 && client.state === "open",
      );
      assert.equal(client.getSnapshot().change?.from, "reconnecting");
      await publish(svc.service, "two");
      await until(client, "the second event", () => received.length === 2);
      assert.deepEqual(received, ["one", "two"]);
    } finally {
      client.close();
      await svc.stop();
    }
  });
  it("a stream cut in the middle of an event: the half is dropped, the whole comes on resume", async () => {
    const svc = await startService();
    const { token } = await svc.login("Ada");
    // A proxy that, on its first connection, forwards the server's bytes up to the middle of
    // the event holding "cut here" and then drops both sides; later connections pass whole.
    let cuts = 0;
    const proxy = createServer((downstream) => {
      const upstream = connect(svc.port, "127.0.0.1");
      downstream.pipe(upstream);
      const cutting = cuts === 0;
      upstream.on("data", (chunk: Buffer) => {
        const at = chunk.indexOf("cut here");
        if (!cutting || at < 0) {
          downstream.write(chunk);
          return;
        }
        cuts++;
        downstream.write(chunk.subarray(0, at), () => {
          downstream.destroy();
          upstream.destroy();
        });
      });
      for (const socket of [downstream, upstream]) socket.on("error", () => {});
      downstream.on("close", () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const { port } = proxy.address() as AddressInfo;
    // Real timers; a jitter of 0 makes the reconnect immediate.
    const client = createRealtimeClient({
      url: `http://127.0.0.1:${port}`,
      eventSource: withBearerToken(EventSource),
      getToken: () => token,
      random: () => 0,
    });
    const received: string[] = [];
    client.subscribe(ROOM, {
      onEvent: (event) => {
        if (event.type === "chat") received.push(String(event.content));
      },
    });
    try {
      await until(client, "the stream to open", () => client.state === "open");
      await publish(svc.service, "one");
      await publish(svc.service, "two");
      await until(client, "two events", () => received.length === 2);
      await publish(svc.service, "cut here");
      await until(client, "the cut", () => client.state !== "open");
      assert.equal(cuts, 1);
      assert.deepEqual(received, ["one", "two"], "half an event is no event");
      await publish(svc.service, "three");
      await until(client, "the resume", () => received.length === 4);
      assert.deepEqual(received, ["one", "two", "cut here", "three"]);
    } finally {
      client.close();
      proxy.close();
      await svc.stop();
    }
  });
});
