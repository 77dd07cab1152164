/**
 * An HTTP/2 stream whose compatibility request and response were let go once it responded
 * (`http2-detach.ts`): they are collectable, and the stream still delivers, heartbeats,
 * releases its per-user slot when the client cancels it (the session and its other streams
 * go on) and ends on a drain. Also the canary for the Node internals the detach relies on.
 */
import assert from "node:assert/strict";
import http2, {
  type ClientHttp2Session,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { openHttp2 } from "@realtime/testkit/sse-client";
import { Http2StreamConnection, SSE_HEADERS } from "./connection.ts";
import { MemoryConnectionLedger } from "./connection-ledger.ts";
import { Hub } from "./hub.ts";
import { MemoryBroker } from "./memory-broker.ts";
import { createEventsHandler } from "./node-handler.ts";

// `gc()` without running the whole test process with --expose-gc.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const HEARTBEAT_MS = 100;

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("a detached HTTP/2 stream", () => {
  const broker = new MemoryBroker();
  const hub = new Hub({
    broker,
    history: broker,
    heartbeatIntervalMs: HEARTBEAT_MS,
    sweepIntervalMs: 20,
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
  let seen: {
    req: WeakRef<Http2ServerRequest>;
    res: WeakRef<Http2ServerResponse>;
    stream: ServerHttp2Stream;
  } | null = null;
  const server = http2.createServer((req, res) => {
    seen = { req: new WeakRef(req), res: new WeakRef(res), stream: req.stream };
    void events(req, res);
  });
  let session: ClientHttp2Session;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    await hub.close();
    session.destroy();
    await new Promise((resolve) => server.close(resolve));
    await broker.close();
    ledger.close();
  });

  test("lets go of the request and response; delivers, heartbeats; a cancel releases the slot", async () => {
    const other = await openHttp2(session, "/events?channel=channel:room", {
      "x-user": "bystander",
    });
    const client = await openHttp2(session, "/events?channel=channel:room", { "x-user": "ann" });
    assert.equal(client.status, 200);
    const { req, res, stream } = seen as unknown as NonNullable<typeof seen>;
    seen = null;
    // The canary: when these fail, node:http2 changed under http2-detach.ts.
    const fields = stream as unknown as Record<symbol, unknown>;
    for (const name of ["request", "response"]) {
      const symbol = Object.getOwnPropertySymbols(stream).find((s) => s.description === name);
      assert.ok(symbol, `the stream has node:http2's ${name} symbol`);
      assert.equal(fields[symbol], undefined, `the stream let go of its ${name}`);
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
    await until("ann's slot to be released", () => ledger.count("ann") === 0);
    assert.equal(hub.connectionCount, 1, "the other stream of the session goes on");
    const again = await openHttp2(session, "/events?channel=channel:room", { "x-user": "ann" });
    assert.equal(again.status, 200, "the slot really is free (max 1)");
    await hub.publish("channel:room", { type: "n", n: 2 });
    await other.waitFor((event) => event.data.includes('"n":2'));
    again.close();
    other.close();
    await until("the streams to close", () => hub.connectionCount === 0);
    await until("the slots to be released", () => ledger.count("bystander") === 0);
  });

  test("a drain ends it with a close event and releases its slot", async () => {
    const client = await openHttp2(session, "/events?channel=channel:room", { "x-user": "fay" });
    seen = null;
    await hub.drain(0);
    await client.ended;
    assert.ok(client.events.some((event) => event.event === "close"));
    await until("fay's slot to be released", () => ledger.count("fay") === 0);
  });
});

describe("an Http2StreamConnection on a detached stream", () => {
  let opened: { connection: Http2StreamConnection; stream: ServerHttp2Stream; leases: string[] }[] =
    [];
  const server = http2.createServer((req, res) => {
    const leases: string[] = [];
    res.on("close", () => leases.push("lease"));
    const connection = new Http2StreamConnection(
      req.stream,
      { "x-request-id": crypto.randomUUID(), ...SSE_HEADERS },
      res,
    );
    connection.write("retry: 1000\n\n");
    opened.push({ connection, stream: req.stream, leases });
  });
  let session: ClientHttp2Session;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(async () => {
    session.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  async function open() {
    opened = [];
    const request = session.request({ ":path": "/" });
    request.end();
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) =>
      request.once("response", resolve),
    );
    await until("the server's side", () => opened.length === 1);
    return { request, headers, ...(opened[0] as (typeof opened)[number]) };
  }

  test("keeps neither the head it sent nor the compatibility layer's listeners", async () => {
    const { request, headers, stream } = await open();
    assert.equal(headers[":status"], 200);
    assert.equal(headers["content-type"], SSE_HEADERS["content-type"]);
    assert.match(String(headers["x-request-id"]), /^[0-9a-f-]{36}$/);
    // node:http2 keeps what `respond` was given: an emptied list (the object form was a
    // dictionary copy of the whole head, request id included).
    assert.deepEqual(Object.keys(stream.sentHeaders), []);
    // One listener per event: no event's listeners kept as an array.
    for (const event of stream.eventNames()) {
      assert.equal(stream.listenerCount(event), 1, `one listener of ${String(event)}`);
    }
    // The compatibility layer's no-ops that stay (to keep `_events` a fast object).
    const names = (event: string) => stream.listeners(event).map((listener) => listener.name);
    assert.deepEqual(names("aborted"), ["onStreamAbortedRequest"]);
    assert.deepEqual(names("error"), ["onStreamError"]);
    // The connection's own listeners are shared by every stream (no closures per stream).
    const other = await open();
    for (const event of ["close", "drain"]) {
      assert.equal(other.stream.listeners(event)[0], stream.listeners(event)[0], event);
    }
    request.close();
    other.request.close();
    await until("the streams to close", () => stream.closed && other.stream.closed);
  });

  test("a drain reaches the onDrain listeners; a stream timeout is harmless", async () => {
    const { request, connection, stream } = await open();
    request.pause();
    const chunk = "x".repeat(16 * 1024);
    let writes = 0;
    while (connection.write(chunk)) {
      writes++;
      assert.ok(writes < 1000, "the paused client fills the stream's window");
    }
    assert.ok(connection.bufferedBytes > 0);
    let drains = 0;
    connection.onDrain(() => drains++);
    connection.onDrain(() => drains++);
    // onStreamTimeoutRequest, left on a detached stream, threw on a timeout (no request).
    const timedOut = new Promise((resolve) => stream.once("timeout", resolve));
    stream.setTimeout(1);
    await timedOut;
    stream.setTimeout(0);
    assert.equal(connection.closed, false, "a timeout closes nothing by itself");
    request.on("data", () => {});
    request.resume();
    await until("the drain", () => drains === 2);
    request.close();
    await until("the stream to close", () => connection.closed);
  });

  test("a client's cancel calls onClose and the response's close listeners, once", async () => {
    const { request, connection, leases } = await open();
    let closes = 0;
    connection.onClose(() => closes++);
    request.close(http2.constants.NGHTTP2_CANCEL);
    await until("the close", () => closes === 1 && leases.length === 1);
    connection.onClose(() => closes++);
    await until("a late onClose", () => closes === 2);
    assert.deepEqual(leases, ["lease"]);
  });
});
