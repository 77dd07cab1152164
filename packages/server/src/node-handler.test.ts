/**
 * `createEventsHandler` behind a plain `node:http` server (what Express and Connect hand it
 * too), over a real socket: streams, resume, refusals as the catalogue's JSON.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { request } from "@realtime/testkit/http";
import { openHttp1 } from "@realtime/testkit/sse-client";
import { Hub } from "./hub.ts";
import { MemoryBroker } from "./memory-broker.ts";
import { createEventsHandler } from "./node-handler.ts";
import type { SseStream } from "./sse-stream.ts";

describe("createEventsHandler on node:http", () => {
  const broker = new MemoryBroker();
  const hub = new Hub({ broker, history: broker });
  const opened: Array<{ stream: SseStream; authorization: unknown }> = [];
  const events = createEventsHandler({
    hub,
    authenticate: (req) => {
      const id = req.headers["x-user"];
      return typeof id === "string" ? { id } : null;
    },
    // The app's own rule: rooms whose name starts with the user's team.
    authorize: ({ user, channels }) =>
      channels.every((channel) => channel.startsWith(`channel:${user.id}-`)) && "team-room",
    maxChannelsPerStream: 2,
    onStream: (stream, { authorization }) => opened.push({ stream, authorization }),
  });
  const server = http.createServer((req, res) => {
    // The host's own header, set before the handler: it goes out with the stream.
    res.setHeader("x-app", "demo");
    if (req.url?.startsWith("/events")) void events(req, res);
    else res.writeHead(404).end();
  });
  let base = "";

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await hub.drain(0);
    await hub.close();
    await new Promise((resolve) => server.close(resolve));
    await broker.close();
  });

  test("streams what is published, with the host's headers, and resumes from Last-Event-ID", async () => {
    const url = `${base}/events?channel=channel:ann-room`;
    const stream = await openHttp1(url, { "x-user": "ann" });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers["x-app"], "demo");
    assert.match(String(stream.headers["content-type"]), /^text\/event-stream/);
    assert.equal(opened.at(-1)?.authorization, "team-room");
    await hub.publish("channel:ann-room", { type: "n", n: 1 });
    await stream.waitFor((event) => event.data.includes('"n":1'));
    const cursor = stream.lastEventId();
    stream.close();
    await stream.ended;
    await hub.publish("channel:ann-room", { type: "n", n: 2 });
    const resumed = await openHttp1(url, { "x-user": "ann", "last-event-id": cursor });
    const [missed] = await resumed.waitForCount(1, (event) => event.event === undefined);
    assert.equal(JSON.parse(missed?.data ?? "{}").n, 2);
    resumed.close();
  });

  test("refusals are JSON { code, message } with the catalogue's status", async () => {
    const cases: Array<[string, Record<string, string>, number, string, string?]> = [
      ["/events?channel=channel:ann-room", {}, 401, "RT_ERR_UNAUTHORIZED"],
      ["/events?channel=channel:bob-room", { "x-user": "ann" }, 403, "RT_ERR_CHANNEL_FORBIDDEN"],
      ["/events?channel=bad", { "x-user": "ann" }, 400, "RT_ERR_BAD_CHANNEL"],
      ["/events", { "x-user": "ann" }, 400, "RT_ERR_BAD_CHANNEL"],
      [
        "/events?channel=channel:ann-a&channel=channel:ann-b&channel=channel:ann-c",
        { "x-user": "ann" },
        400,
        "RT_ERR_TOO_MANY_CHANNELS",
      ],
      [
        "/events?channel=channel:ann-room",
        { "x-user": "ann" },
        405,
        "RT_ERR_METHOD_NOT_ALLOWED",
        "POST",
      ],
    ];
    for (const [path, headers, status, code, method] of cases) {
      const reply = await request(`${base}${path}`, { headers, ...(method && { method }) });
      assert.equal(reply.status, status, path);
      assert.equal(reply.json?.code, code, path);
      assert.match(String(reply.headers["content-type"]), /^application\/json/);
    }
  });

  test("a user past maxStreamsPerUser is refused with 429", async () => {
    const handler = createEventsHandler({
      hub,
      authenticate: () => ({ id: "solo" }),
      maxStreamsPerUser: 1,
    });
    const capped = http.createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => capped.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(capped.address() as AddressInfo).port}/?channel=channel:solo`;
      const stream = await openHttp1(url);
      assert.equal(stream.status, 200);
      const refused = await request(url);
      assert.equal(refused.status, 429);
      assert.equal(refused.json?.code, "RT_ERR_TOO_MANY_CONNECTIONS");
      stream.close();
      await stream.ended;
    } finally {
      capped.closeAllConnections();
      await new Promise((resolve) => capped.close(resolve));
    }
  });

  test("a hub that no longer accepts answers 503 with Retry-After", async () => {
    const local = new Hub({ broker });
    local.stopAccepting();
    const handler = createEventsHandler({ hub: local, authenticate: () => ({ id: "ann" }) });
    const refusing = http.createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    try {
      const port = (refusing.address() as AddressInfo).port;
      const reply = await request(`http://127.0.0.1:${port}/?channel=channel:x`);
      assert.equal(reply.status, 503);
      assert.equal(reply.json?.code, "RT_ERR_SHUTTING_DOWN");
      assert.ok(Number(reply.headers["retry-after"]) >= 1);
    } finally {
      await local.close();
      await new Promise((resolve) => refusing.close(resolve));
    }
  });
});
