/**
 * The plugin mounted into a fresh Fastify app that has its own authentication (an `x-user`
 * header standing in for the app's session), over real sockets: HTTP/1.1 and cleartext HTTP/2.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type Delivery,
  MemoryBroker,
  MemoryConnectionLedger,
  type RealtimeUser,
  type SseStream,
} from "@realtime/server";
import { postJson, request, until } from "@realtime/testkit/http";
import { openHttp1, openHttp2 } from "@realtime/testkit/sse-client";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { type RealtimePluginOptions, realtime } from "./index.ts";

// `gc()` without running the whole test process with --expose-gc.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

function userOf(request: FastifyRequest): RealtimeUser | null {
  const id = request.headers["x-user"];
  return typeof id === "string" ? { id, name: `User ${id}` } : null;
}

async function mount(
  options: Partial<RealtimePluginOptions> = {},
  fastify: {
    http2?: true;
    genReqId?: (request: { headers: Record<string, unknown> }) => string;
  } = {},
  setUp: (app: FastifyInstance) => void = () => {},
): Promise<{ app: FastifyInstance; base: string }> {
  const app = Fastify(fastify as object) as unknown as FastifyInstance;
  apps.push(app);
  // The host's own error handler: the plugin's refusals keep the catalogue's answers anyway.
  app.setErrorHandler((_error, _request, reply) => reply.code(418).send("host handler"));
  setUp(app);
  await app.register(realtime, { authenticate: userOf, ...options });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, base: `http://127.0.0.1:${port}` };
}

describe("@realtime/fastify in a fresh app", () => {
  test("a stream receives what the app publishes, on a room and on the user's own channel", async () => {
    const { app, base } = await mount();
    const stream = await openHttp1(`${base}/api/events?channel=channel:lobby&channel=user:alice`, {
      "x-user": "alice",
    });
    assert.equal(stream.status, 200);
    assert.match(String(stream.headers["content-type"]), /^text\/event-stream/);
    const room = await app.realtime.publish("channel:lobby", { type: "message.created", id: 7 });
    await app.realtime.sendToUser("alice", { type: "job.progress", jobId: "j1", percent: 40 });
    const [first, second] = await stream.waitForCount(2, (event) => event.event === undefined);
    assert.deepEqual(
      [JSON.parse(first?.data ?? "{}").type, JSON.parse(second?.data ?? "{}").type],
      ["message.created", "job.progress"],
    );
    assert.equal(JSON.parse(first?.data ?? "{}").channel, "channel:lobby");
    assert.equal(room.offset, 1);
    stream.close();
  });

  test("a reconnect with Last-Event-ID gets what it missed, once", async () => {
    const { app, base } = await mount();
    const url = `${base}/api/events?channel=channel:resume`;
    const first = await openHttp1(url, { "x-user": "bob" });
    await app.realtime.publish("channel:resume", { type: "n", n: 1 });
    await first.waitFor((event) => event.data.includes('"n":1'));
    const cursor = first.lastEventId();
    first.close();
    await first.ended;
    await app.realtime.publish("channel:resume", { type: "n", n: 2 });
    await app.realtime.publish("channel:resume", { type: "n", n: 3 });
    const second = await openHttp1(url, { "x-user": "bob", "last-event-id": cursor });
    const replayed = await second.waitForCount(2, (event) => event.event === undefined);
    assert.deepEqual(
      replayed.map((event) => JSON.parse(event.data).n),
      [2, 3],
    );
    second.close();
  });

  test("refusals are the catalogue's JSON, whatever the host's error handler", async () => {
    const { base } = await mount();
    const cases: Array<{
      path: string;
      headers: Record<string, string>;
      status: number;
      code: string;
    }> = [
      {
        path: "/api/events?channel=channel:a",
        headers: {},
        status: 401,
        code: "RT_ERR_UNAUTHORIZED",
      },
      {
        path: "/api/events?channel=user:carol",
        headers: { "x-user": "dave" },
        status: 403,
        code: "RT_ERR_CHANNEL_FORBIDDEN",
      },
      {
        path: "/api/events?channel=nope",
        headers: { "x-user": "dave" },
        status: 400,
        code: "RT_ERR_BAD_CHANNEL",
      },
      {
        path: `/api/events?${Array.from({ length: 17 }, (_, i) => `channel=channel:c${i}`).join("&")}`,
        headers: { "x-user": "dave" },
        status: 400,
        code: "RT_ERR_TOO_MANY_CHANNELS",
      },
      {
        path: "/api/events",
        headers: { "x-user": "dave" },
        status: 400,
        code: "RT_ERR_BAD_REQUEST",
      },
    ];
    for (const { path, headers, status, code } of cases) {
      const reply = await request(`${base}${path}`, { headers });
      assert.equal(reply.status, status, path);
      assert.equal(reply.json?.code, code, path);
      assert.equal(typeof reply.json?.message, "string");
    }
  });

  test("publishing over HTTP is refused by default and allowed by the app's authorize", async () => {
    const closed = await mount();
    const refused = await postJson(
      `${closed.base}/api/publish`,
      null,
      {
        channel: "channel:lobby",
        event: { type: "message.created" },
      },
      { headers: { "x-user": "erin" } },
    );
    assert.equal(refused.status, 403);
    assert.equal(refused.json?.code, "RT_ERR_CHANNEL_FORBIDDEN");

    const open = await mount({
      authorize: ({ user, channels, action }) =>
        action === "subscribe" ||
        (user.id === "erin" && channels.every((c) => c.startsWith("channel:"))),
    });
    const stream = await openHttp1(`${open.base}/api/events?channel=channel:lobby`, {
      "x-user": "frank",
    });
    const body = { channel: "channel:lobby", event: { type: "message.created", messageId: "m1" } };
    const headers = { "x-user": "erin", "idempotency-key": "post-1" };
    const accepted = await postJson(`${open.base}/api/publish`, null, body, { headers });
    assert.equal(accepted.status, 202);
    assert.deepEqual(accepted.json, { channel: "channel:lobby", offset: 1 });
    const retried = await postJson(`${open.base}/api/publish`, null, body, { headers });
    assert.equal(retried.status, 202);
    assert.equal(retried.headers["idempotent-replayed"], "true");
    assert.equal(retried.json?.offset, 1);
    const denied = await postJson(`${open.base}/api/publish`, null, body, {
      headers: { "x-user": "frank" },
    });
    assert.equal(denied.status, 403);
    const event = await stream.waitFor((e) => e.data.includes("m1"));
    assert.equal(JSON.parse(event.data).type, "message.created");
    const invalid = await postJson(
      `${open.base}/api/publish`,
      null,
      {
        channel: "channel:lobby",
        event: { kind: "no type" },
      },
      { headers: { "x-user": "erin" } },
    );
    assert.equal(invalid.status, 400);
    assert.equal(invalid.json?.code, "RT_ERR_BAD_REQUEST");
    stream.close();
  });

  test("a publish carries the request's id to the pods that deliver it, when it is a plain token", async () => {
    const deliveries: Delivery[] = [];
    const { base } = await mount(
      { authorize: () => true, hubOptions: { onDelivered: (d) => deliveries.push(d) } },
      { genReqId: (request) => String(request.headers["x-trace"]) },
    );
    const stream = await openHttp1(`${base}/api/events?channel=channel:traced`, { "x-user": "a" });
    for (const [trace, messageId] of [
      ["t-1:a.b", "m1"],
      ["a host's own id", "m2"],
    ]) {
      const body = { channel: "channel:traced", event: { type: "message.created", messageId } };
      const headers = { "x-user": "a", "x-trace": trace as string };
      assert.equal((await postJson(`${base}/api/publish`, null, body, { headers })).status, 202);
    }
    await stream.waitFor((e) => e.data.includes("m2"));
    await until(() => deliveries.length === 2, "both deliveries traced");
    assert.deepEqual(
      deliveries.map((d) => [d.offset, d.requestId]),
      [
        [1, "t-1:a.b"],
        [2, undefined],
      ],
    );
    stream.close();
  });

  test("history: a room's last events, then the stream continues exactly after them", async () => {
    const { app, base } = await mount();
    for (const n of [1, 2, 3]) await app.realtime.publish("channel:past", { type: "n", n });
    const page = await request(`${base}/api/channels/channel:past/messages?limit=2`, {
      headers: { "x-user": "joe" },
    });
    assert.equal(page.status, 200, page.text);
    const body = page.json as {
      events: Array<{ id: string; event: { n: number } }>;
      cursor: string;
    };
    assert.deepEqual(
      body.events.map((e) => e.event.n),
      [2, 3],
    );
    await app.realtime.publish("channel:past", { type: "n", n: 4 });
    const stream = await openHttp1(
      `${base}/api/events?channel=channel:past&lastEventId=${encodeURIComponent(body.cursor)}`,
      { "x-user": "joe" },
    );
    const [next] = await stream.waitForCount(1, (event) => event.event === undefined);
    assert.equal(JSON.parse(next?.data ?? "{}").n, 4);
    stream.close();
    const foreign = await request(`${base}/api/channels/user:ann/messages`, {
      headers: { "x-user": "joe" },
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json?.code, "RT_ERR_CHANNEL_FORBIDDEN");
    const anonymous = await request(`${base}/api/channels/channel:past/messages`);
    assert.equal(anonymous.status, 401);
  });

  test("one user holds at most maxStreamsPerUser streams; others are unaffected", async () => {
    const ledger = new MemoryConnectionLedger({ max: 2 });
    const { base } = await mount({ ledger });
    const url = `${base}/api/events?channel=channel:busy`;
    const first = await openHttp1(url, { "x-user": "kim" });
    const second = await openHttp1(url, { "x-user": "kim" });
    assert.deepEqual([first.status, second.status], [200, 200]);
    const refused = await request(url, { headers: { "x-user": "kim" } });
    assert.equal(refused.status, 429);
    assert.equal(refused.json?.code, "RT_ERR_TOO_MANY_CONNECTIONS");
    assert.ok(Number(refused.headers["retry-after"]) >= 1);
    const other = await openHttp1(url, { "x-user": "lee" });
    assert.equal(other.status, 200);
    // A closed stream gives its slot back.
    first.close();
    await until(() => ledger.count("kim") === 1, "kim's closed stream released its slot");
    const again = await openHttp1(url, { "x-user": "kim" });
    assert.equal(again.status, 200);
    for (const stream of [second, other, again]) stream.close();
  });

  test("an HTTP/2 stream cancelled while it is being checked gives its slot back", async () => {
    const ledger = new MemoryConnectionLedger({ max: 1 });
    let checked: FastifyRequest | undefined;
    let arrived = () => {};
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let letThrough = () => {};
    const gate = new Promise<void>((resolve) => {
      letThrough = resolve;
    });
    const { base } = await mount(
      {
        ledger,
        authenticate: async (request) => {
          checked = request;
          arrived();
          await gate; // a slow session store
          return { id: "mia" };
        },
      },
      { http2: true },
    );
    const session = http2.connect(base);
    try {
      const cancelled = session.request({ ":path": "/api/events?channel=channel:slow" });
      cancelled.end();
      await arrival;
      assert.ok(checked);
      const serverSide = (checked.raw as unknown as http2.Http2ServerRequest).stream;
      const gone = new Promise((resolve) => serverSide.once("close", resolve));
      cancelled.close(http2.constants.NGHTTP2_CANCEL);
      await gone; // the response's close is past before the slot is taken
      letThrough();
      await until(() => ledger.count("mia") === 0, "the cancelled stream's slot came back");
      const next = await openHttp2(session, "/api/events?channel=channel:slow");
      assert.equal(next.status, 200);
      next.close();
    } finally {
      session.destroy();
    }
  });

  test("the host's own errors on the plugin's routes go to the host's error handler", async () => {
    const { app, base } = await mount({}, {}, (host) => {
      host.addHook("onRequest", async (request) => {
        if (request.headers["x-slow-down"]) {
          throw Object.assign(new Error("slow down"), { statusCode: 429 });
        }
      });
    });
    const limited = await request(`${base}/api/events?channel=channel:x`, {
      headers: { "x-user": "ned", "x-slow-down": "1" },
    });
    assert.equal(limited.status, 418);
    assert.equal(limited.text, "host handler");
    assert.ok(app.hasRoute({ method: "GET", url: "/api/events" }));
  });

  test("credentials that have expired open no stream", async () => {
    const { base } = await mount({
      authenticate: () => ({ id: "old", expiresAt: Date.now() - 1000 }),
    });
    const refused = await request(`${base}/api/events?channel=channel:x`);
    assert.equal(refused.status, 401);
    assert.equal(refused.json?.code, "RT_ERR_TOKEN_EXPIRED");
  });

  test("readiness follows the hub and the broker", async () => {
    const broker = new MemoryBroker();
    const { app, base } = await mount({ broker });
    const ready = await request(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(ready.json?.status, "ready");
    app.realtime.hub.stopAccepting();
    const draining = await request(`${base}/readyz`);
    assert.equal(draining.status, 503);
    assert.equal(draining.json?.code, "RT_ERR_SHUTTING_DOWN");
  });

  test("prefix and paths place the routes; onStream sees each stream with its user", async () => {
    const seen: Array<{ stream: SseStream; user: string }> = [];
    const { app, base } = await mount({
      prefix: "/realtime",
      routes: { events: "/stream", publish: false },
      onStream: (stream, { user }) => seen.push({ stream, user: user.id }),
    });
    const stream = await openHttp1(`${base}/realtime/stream?channel=channel:x`, {
      "x-user": "gil",
    });
    assert.equal(stream.status, 200);
    assert.deepEqual(
      seen.map((s) => s.user),
      ["gil"],
    );
    assert.equal((await request(`${base}/api/events?channel=channel:x`)).status, 404);
    assert.equal((await postJson(`${base}/realtime/api/publish`, null, {})).status, 404);
    await app.realtime.publish("channel:x", { type: "ping" });
    await stream.waitFor((event) => event.data.includes('"ping"'));
    stream.close();
  });

  for (const h2 of [false, true]) {
    test(`once an ${h2 ? "HTTP/2" : "HTTP/1.1"} stream is open, Fastify's request and reply and Node's are collectable`, async () => {
      const refs: WeakRef<object>[] = [];
      const { app, base } = await mount({}, h2 ? { http2: true } : {}, (host) => {
        host.addHook("onRequest", async (request, reply) => {
          refs.push(new WeakRef(request), new WeakRef(reply));
          refs.push(new WeakRef(request.raw), new WeakRef(reply.raw));
        });
      });
      const session = h2 ? http2.connect(base) : null;
      const path = "/api/events?channel=channel:lean";
      const stream = session
        ? await openHttp2(session, path, { "x-user": "ivy" })
        : await openHttp1(`${base}${path}`, { "x-user": "ivy" });
      assert.equal(stream.status, 200);
      assert.equal(refs.length, 4);
      for (let i = 0; i < 3 && refs.some((ref) => ref.deref() !== undefined); i++) {
        await new Promise((resolve) => setImmediate(resolve));
        gc();
      }
      assert.deepEqual(
        refs.map((ref) => ref.deref() === undefined),
        [true, true, true, true],
        "request, reply, IncomingMessage, ServerResponse collected",
      );
      // The stream goes on without them.
      await app.realtime.publish("channel:lean", { type: "still.here" });
      await stream.waitFor((event) => event.data.includes("still.here"));
      stream.close();
      await until(() => app.realtime.hub.connectionCount === 0, "the stream closed");
      session?.destroy();
    });
  }

  test("closing the app ends its open streams instead of waiting for them", async () => {
    const { app, base } = await mount();
    const stream = await openHttp1(`${base}/api/events?channel=channel:bye`, { "x-user": "hal" });
    apps.splice(apps.indexOf(app), 1);
    await app.close();
    await stream.ended;
    assert.equal(app.realtime.hub.connectionCount, 0);
  });

  test("streams over cleartext HTTP/2", async () => {
    const { app, base } = await mount({}, { http2: true });
    const session = http2.connect(base);
    try {
      const stream = await openHttp2(session, "/api/events?channel=channel:h2", {
        "x-user": "ida",
      });
      assert.equal(stream.status, 200);
      await app.realtime.publish("channel:h2", { type: "over.h2" });
      await stream.waitFor((event) => event.data.includes("over.h2"));
      stream.close();
    } finally {
      // Gone at once, as a browser tab that closes: a graceful close() of a session whose
      // stream was cut keeps it (and so the server's close) waiting in Node's HTTP/2 client.
      session.destroy();
    }
  });
});
