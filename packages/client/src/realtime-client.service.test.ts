/**
 * The client against the real service, in Node, over real sockets with the `eventsource`
 * package and a bearer token. The retry timers are manual so the test decides when the client's
 * backoff ends (e.g. only after events were posted while the server was down); everything else
 * is awaited with a deadline, never slept for.
 */
import assert from "node:assert/strict";
import { type AddressInfo, connect, createServer } from "node:net";
import { afterEach, describe, it } from "node:test";
import { MemoryBroker, MemoryBus } from "@realtime/server";
import type { Service } from "@realtime/service";
import { until as poll, tokens } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
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

const HOUR_MS = 3_600_000;
const ADA = { id: "u_ada", name: "Ada" };

/** A token the service signed for `ADA` that expired an hour ago. */
const expiredToken = () => tokens(() => Date.now() - 2 * HOUR_MS).issueUserToken(ADA);

/** A token for `ADA` good for an hour: what an app's own refresh endpoint would hand out. */
const freshToken = () => tokens().issueUserToken(ADA);

/** A chat message to {@link ROOM} as `request()` sends it. */
const chatPost = (content: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ channel: "room", content }),
});

/** The chat messages the service holds for {@link ROOM}, oldest first. */
async function chatHistory(client: RealtimeClient): Promise<string[]> {
  const page = await client.history(ROOM);
  return page.events
    .filter(({ event }) => event.type === "chat")
    .map(({ event }) => String(event.content));
}

/** Resolves once `count` calls were made; `signal()` counts one. */
function countdown(count: number) {
  let left = count;
  let release = () => {};
  const reached = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    reached,
    signal() {
      if (--left === 0) release();
    },
  };
}

/** A `fetch` that tells `onResponse` the status of every answer before the client sees it. */
function watchedFetch(onResponse: (status: number, call: number) => void | Promise<void>) {
  let calls = 0;
  const fetcher = async (input: string, init?: RequestInit) => {
    const call = calls++;
    const response = await fetch(input, init);
    await onResponse(response.status, call);
    return response;
  };
  return { fetch: fetcher, calls: () => calls };
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

describe("request() when the token expires, against the real service", { timeout: 60_000 }, () => {
  let svc: RunningService | undefined;
  const service = async (env: Record<string, string> = {}) => {
    svc = await startService(env);
    return svc;
  };
  afterEach(async () => {
    await svc?.stop();
    svc = undefined;
  });

  it("renews a token that expired and sends the request again: it succeeds, posted once", async () => {
    const running = await service({ TOKEN_TTL_SECONDS: "1" });
    const { url } = running;
    let { token } = await running.login("Ada");
    // The dev login's token lives at most a second: wait until the service says it expired.
    await poll(async () => {
      const me = await fetch(`${url}/api/auth/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return me.status === 401 && (await me.json()).code === "RT_ERR_TOKEN_EXPIRED";
    }, "the dev login's token to expire");
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      getToken: () => token,
      onTokenExpired: async () => {
        refreshes++;
        token = await freshToken();
      },
    });
    const response = await client.request("/api/chat/messages", chatPost("after expiry"));
    assert.equal(response.status, 204, await response.text());
    assert.equal(refreshes, 1);
    assert.deepEqual(await chatHistory(client), ["after expiry"], "sent again, posted once");
  });

  it("sends a Blob or a byte body again too", async () => {
    const { url } = await service();
    let token = await expiredToken();
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      getToken: () => token,
      onTokenExpired: async () => {
        refreshes++;
        token = await freshToken();
      },
    });
    const json = (content: string) => JSON.stringify({ channel: "room", content });
    const blob = await client.request("/api/chat/messages", {
      method: "POST",
      body: new Blob([json("blob")], { type: "application/json" }),
    });
    assert.equal(blob.status, 204);
    token = await expiredToken();
    const bytes = await client.request("/api/chat/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new TextEncoder().encode(json("bytes")),
    });
    assert.equal(bytes.status, 204);
    assert.equal(refreshes, 2);
    assert.deepEqual(await chatHistory(client), ["blob", "bytes"]);
  });

  it("without onTokenExpired, asks getToken again and sends once more", async () => {
    const { url } = await service();
    const handed = [await expiredToken(), await freshToken()];
    let reads = 0;
    const client = createRealtimeClient({ url, getToken: () => handed[reads++] });
    const response = await client.request("/api/auth/me");
    assert.equal(response.status, 200);
    assert.equal((await response.json()).user.id, ADA.id);
    assert.equal(reads, 2);
  });

  it("N concurrent requests that meet the expiry share one onTokenExpired call", async () => {
    const N = 5;
    const { url } = await service();
    let token = await expiredToken();
    // The renewal waits until every request had its 401: all of them meet it in flight.
    const refused = countdown(N);
    const watched = watchedFetch((status) => {
      if (status === 401) refused.signal();
    });
    let refreshes = 0;
    let tokenReads = 0;
    const client = createRealtimeClient({
      url,
      fetch: watched.fetch,
      getToken: () => {
        tokenReads++;
        return token;
      },
      onTokenExpired: async () => {
        refreshes++;
        await refused.reached;
        token = await freshToken();
      },
    });
    const responses = await Promise.all(
      Array.from({ length: N }, () => client.request("/api/auth/me")),
    );
    assert.deepEqual(
      responses.map((r) => r.status),
      Array(N).fill(200),
    );
    for (const r of responses) assert.equal((await r.json()).user.id, ADA.id);
    assert.equal(refreshes, 1);
    assert.equal(watched.calls(), 2 * N, "each sent twice");
    assert.equal(tokenReads, 2 * N, "getToken asked again for each retry");
  });

  it("a 401 that comes after another request's renewal finished sends again without renewing", async () => {
    const { url } = await service();
    let token = await expiredToken();
    let firstDone = () => {};
    const firstSettled = new Promise<void>((resolve) => {
      firstDone = resolve;
    });
    // Both are sent with the expired token; the second one's 401 reaches the client only once
    // the first request is done: renewed, sent again, answered.
    const watched = watchedFetch(async (_status, call) => {
      if (call === 1) await firstSettled;
    });
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      fetch: watched.fetch,
      getToken: () => token,
      onTokenExpired: async () => {
        refreshes++;
        token = await freshToken();
      },
    });
    const first = client.request("/api/auth/me").finally(firstDone);
    const second = client.request("/api/auth/me");
    assert.deepEqual([(await first).status, (await second).status], [200, 200]);
    assert.equal(refreshes, 1, "the second request's token was renewed already");
  });

  it("does not renew when the caller set its own authorization, or for a token that is not expired", async () => {
    const { url } = await service();
    const expired = await expiredToken();
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      getToken: () => "not-a-token",
      onTokenExpired: () => {
        refreshes++;
      },
    });
    const own = await client.request("/api/auth/me", {
      headers: { authorization: `Bearer ${expired}` },
    });
    assert.equal(own.status, 401);
    assert.equal((await own.json()).code, "RT_ERR_TOKEN_EXPIRED", "the body is still readable");
    const invalid = await client.request("/api/auth/me");
    assert.equal(invalid.status, 401);
    assert.equal((await invalid.json()).code, "RT_ERR_UNAUTHORIZED");
    assert.equal(refreshes, 0);
  });

  it("does not send a stream body again, nor a request aborted meanwhile", async () => {
    const { url } = await service();
    const token = await expiredToken();
    let abortOnAnswer: AbortController | null = null;
    const watched = watchedFetch(() => abortOnAnswer?.abort());
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      fetch: watched.fetch,
      getToken: () => token,
      onTokenExpired: () => {
        refreshes++;
      },
    });
    const streamed = await client.request("/api/chat/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([JSON.stringify({ channel: "room", content: "x" })]).stream(),
      duplex: "half",
    } as RequestInit);
    assert.equal(streamed.status, 401);
    assert.equal((await streamed.json()).code, "RT_ERR_TOKEN_EXPIRED");
    abortOnAnswer = new AbortController();
    const aborted = await client.request("/api/auth/me", { signal: abortOnAnswer.signal });
    assert.equal(aborted.status, 401);
    assert.equal(refreshes, 0);
    assert.equal(watched.calls(), 2, "neither was sent twice");
  });

  it("returns the retry's 401 when the renewed token is refused too: one renewal, no loop", async () => {
    const { url } = await service();
    const token = await expiredToken();
    const watched = watchedFetch(() => {});
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      fetch: watched.fetch,
      getToken: () => token,
      onTokenExpired: () => {
        refreshes++; // renews nothing: the token stays expired
      },
    });
    const response = await client.request("/api/auth/me");
    assert.equal(response.status, 401);
    assert.equal((await response.json()).code, "RT_ERR_TOKEN_EXPIRED");
    assert.equal(refreshes, 1);
    assert.equal(watched.calls(), 2);
  });

  it("rejects every waiting request with onTokenExpired's error, after one call", async () => {
    const { url } = await service();
    const token = await expiredToken();
    const refused = countdown(3);
    const watched = watchedFetch((status) => {
      if (status === 401) refused.signal();
    });
    let refreshes = 0;
    const client = createRealtimeClient({
      url,
      fetch: watched.fetch,
      getToken: () => token,
      onTokenExpired: async () => {
        refreshes++;
        await refused.reached;
        throw new Error("session gone");
      },
    });
    const results = await Promise.allSettled(
      Array.from({ length: 3 }, () => client.request("/api/auth/me")),
    );
    assert.deepEqual(
      results.map((r) => (r.status === "rejected" ? (r.reason as Error).message : r.status)),
      ["session gone", "session gone", "session gone"],
    );
    assert.equal(refreshes, 1);
    assert.equal(watched.calls(), 3, "nothing sent again");
  });
});
