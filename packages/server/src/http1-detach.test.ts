/**
 * An HTTP/1.1 stream whose socket was taken from node:http once its head was out
 * (`http1-detach.ts`): it still delivers, heartbeats, is dropped when slow, ends on a drain,
 * and releases its per-user slot when the client goes away; the request, the response and
 * the parser's hold on them are gone. Also the canary for the Node internals the detach
 * relies on: on a Node where they changed, the first test fails instead of every stream
 * silently staying attached.
 */
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net, { type AddressInfo, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { openHttp1 } from "@realtime/testkit/sse-client";
import { MemoryConnectionLedger } from "./connection-ledger.ts";
import { SERVER_SOCKET_LISTENERS } from "./http1-detach.ts";
import { Hub } from "./hub.ts";
import { MemoryBroker } from "./memory-broker.ts";
import { createEventsHandler } from "./node-handler.ts";

// `gc()` without running the whole test process with --expose-gc.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const HEARTBEAT_MS = 100;
const MAX_QUEUED = 64 * 1024;

/** What the server saw of the last request: weakly, so that the test itself holds nothing. */
interface Seen {
  req: WeakRef<IncomingMessage>;
  res: WeakRef<ServerResponse>;
  socket: Socket;
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A raw HTTP/1.1 client: sends `request`, resolves with the socket once the head is in. */
async function rawStream(port: number, request: string): Promise<{ socket: Socket; head: string }> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  socket.write(request);
  let text = "";
  await new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (text.includes("\r\n\r\n")) {
        socket.off("data", onData);
        resolve();
      }
    };
    socket.on("data", onData);
  });
  return { socket, head: text.slice(0, text.indexOf("\r\n\r\n")) };
}

const get = (user: string, channel = "channel:room") =>
  `GET /events?channel=${channel} HTTP/1.1\r\nHost: x\r\nX-User: ${user}\r\n\r\n`;

describe("a detached HTTP/1.1 stream", () => {
  const broker = new MemoryBroker();
  const hub = new Hub({
    broker,
    history: broker,
    heartbeatIntervalMs: HEARTBEAT_MS,
    sweepIntervalMs: 20,
    maxQueuedBytes: MAX_QUEUED,
    maxStallMs: 60_000,
  });
  const ledger = new MemoryConnectionLedger({ max: 1 });
  const events = createEventsHandler({
    hub,
    ledger,
    authenticate: (req) => {
      const id = req.headers["x-user"];
      return typeof id === "string" ? { id } : null;
    },
  });
  let seen: Seen | null = null;
  const server = http.createServer((req, res) => {
    seen = {
      req: new WeakRef(req),
      res: new WeakRef(res),
      socket: req.socket,
    };
    void events(req, res);
  });
  let port = 0;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await hub.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await broker.close();
    ledger.close();
  });

  test("the head and the ready event leave in one write", async () => {
    const writes: string[] = [];
    const count = (socket: Socket) => {
      const counted = socket as Socket & {
        _write: (...args: unknown[]) => unknown;
        _writev: (...args: unknown[]) => unknown;
      };
      const write = counted._write;
      const writev = counted._writev;
      counted._write = function (this: Socket, ...args: unknown[]) {
        writes.push("write");
        return write.apply(this, args);
      };
      counted._writev = function (this: Socket, ...args: unknown[]) {
        writes.push("writev");
        return writev.apply(this, args);
      };
    };
    server.once("connection", count);
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.write(get("one-write"));
    let text = "";
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
    });
    try {
      await until("the ready event", () => text.includes("event: ready"));
      assert.deepEqual(writes, ["writev"], "one write to the socket, head and ready together");
    } finally {
      socket.destroy();
    }
  });

  test("frees the parser, the request and the response; delivers and heartbeats; a client gone releases its slot", async () => {
    const client = await openHttp1(`http://127.0.0.1:${port}/events?channel=channel:room`, {
      "x-user": "ann",
    });
    assert.equal(client.status, 200);
    assert.equal(client.headers.connection, "close", "not reused after the stream");
    const { socket, req, res } = seen as unknown as Seen;
    seen = null;
    // The canary: when these fail, node:http changed under http1-detach.ts (which then leaves
    // every stream attached, as the pipelined case below is).
    const internal = socket as Socket & { parser?: unknown; _httpMessage?: unknown };
    assert.equal(internal.parser, null, "the parser is off the socket");
    assert.equal(internal._httpMessage, null, "the response is off the socket");
    for (const [event, name] of Object.entries(SERVER_SOCKET_LISTENERS)) {
      const left = socket.listeners(event).filter((listener) => listener.name === name);
      assert.deepEqual(left, [], `node:http's ${event} listener is off the socket`);
    }
    for (let i = 0; i < 3 && (req.deref() || res.deref()); i++) {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    }
    assert.equal(req.deref(), undefined, "the request was collected");
    assert.equal(res.deref(), undefined, "the response was collected");

    await hub.publish("channel:room", { type: "n", n: 1 });
    await client.waitFor((event) => event.data.includes('"n":1'));
    await until("a heartbeat", () => client.text().includes(": hb"), 5 * HEARTBEAT_MS + 2000);
    assert.equal(ledger.count("ann"), 1);

    client.close();
    await until("the stream to close", () => hub.connectionCount === 0);
    await until("ann's slot to be released", () => ledger.count("ann") === 0);
    // And it really is free: ann may open another (max 1).
    const again = await openHttp1(`http://127.0.0.1:${port}/events?channel=channel:room`, {
      "x-user": "ann",
    });
    assert.equal(again.status, 200);
    again.close();
    await until("the second stream to close", () => ledger.count("ann") === 0);
  });

  test("a client that stops reading is dropped, and its slot released", async () => {
    const { socket, head } = await rawStream(port, get("bob", "channel:flood"));
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, /connection: close/i, "detached");
    socket.pause();
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const content = "x".repeat(15_000);
    for (let i = 0; i < 2000 && hub.connectionCount > 0; i++) {
      await hub.publish("channel:flood", { type: "bulk", n: i, content });
      await new Promise((resolve) => setImmediate(resolve));
    }
    await until("the slow stream to be dropped", () => hub.connectionCount === 0);
    await until("bob's slot to be released", () => ledger.count("bob") === 0);
    socket.resume();
    await closed;
  });

  test("input after the request, which no SSE client sends, drops the stream", async () => {
    const { socket, head } = await rawStream(port, get("cat"));
    assert.match(head, /connection: close/i, "detached");
    assert.equal(hub.connectionCount, 1);
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.resume();
    socket.write(get("cat"));
    await closed;
    await until("the stream to close", () => hub.connectionCount === 0);
    await until("cat's slot to be released", () => ledger.count("cat") === 0);
  });

  test("a request pipelined behind the stream's keeps it with node:http, and it still streams", async () => {
    const { socket, head } = await rawStream(port, get("dan") + get("eve"));
    assert.match(head, /^HTTP\/1\.1 200/);
    assert.match(head, /connection: keep-alive/i, "not detached");
    let body = "";
    socket.on("data", (chunk: Buffer) => {
      body += chunk.toString("latin1");
    });
    await hub.publish("channel:room", { type: "n", n: 2 });
    await until("the event", () => body.includes('"n":2'));
    socket.destroy();
    await until("the stream to close", () => hub.connectionCount === 0);
    await until("dan's slot to be released", () => ledger.count("dan") === 0);
  });

  test("a drain ends it with a close event, closes the socket, and the server can close", async () => {
    const client = await openHttp1(`http://127.0.0.1:${port}/events?channel=channel:room`, {
      "x-user": "fay",
    });
    const { socket } = seen as unknown as Seen;
    seen = null;
    const socketClosed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    await hub.drain(0);
    await client.ended;
    assert.ok(
      client.events.some((event) => event.event === "close"),
      "the client got the close event",
    );
    await socketClosed;
    assert.equal(ledger.count("fay"), 0);
    // Nothing left open: the server closes without waiting on a stream's socket.
    await new Promise((resolve) => server.close(resolve));
  });
});
