/**
 * A pod shutting down, over real sockets, phase by phase (docs/operations.md, "Shutdown and
 * rolling restarts"; docs/protocol.md, "Draining"):
 *
 * - while the drain runs: `/readyz` and new streams get 503 `RT_ERR_SHUTTING_DOWN`, POSTs are
 *   still served, and a stream opened before gets their events, then `close` 3001 with a
 *   `retry:` hint;
 * - once the drain is over and the server closes: a request that still arrives, on a
 *   connection kept open by a request in flight, gets the app's own 503 `RT_ERR_SHUTTING_DOWN`
 *   with `Retry-After: 1` (the `onRequest` hook in app.ts), while the request in flight is
 *   answered.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { describe, it } from "node:test";
import { CloseCode } from "@realtime/protocol";
import { openStream, postJson, refusal, request } from "@realtime/testkit/http";
import { startService } from "@realtime/testkit/service";
import { openHttp1 } from "@realtime/testkit/sse-client";

/** Chat events only: presence events share the room channels. */
const isChat = (e: { event?: string | undefined; data: string }) =>
  e.event === undefined && JSON.parse(e.data).type === "chat";

describe("shutting down", () => {
  it("while the drain runs: readiness and new streams 503, POSTs served and delivered, then close 3001 with a retry hint", async () => {
    const RETRY_MS = 1000;
    const RETRY_JITTER_MS = 1000;
    const DRAIN_MS = 4000;
    // Pinned: the drain closes the stream at 3/4 of its window (3 s), not at a random moment.
    const svc = await startService(
      { RETRY_MS: String(RETRY_MS), RETRY_JITTER_MS: String(RETRY_JITTER_MS) },
      { random: () => 0.75 },
    );
    const { token } = await svc.login("Ada");
    const auth = { authorization: `Bearer ${token}` };
    const url = `${svc.url}/api/events?channel=channel:drain`;
    const before = await openHttp1(url, auth);
    assert.equal(before.status, 200);
    await before.waitFor((e) => e.event === "ready");

    const stopping = svc.service.shutdown(DRAIN_MS);

    const ready = await request(`${svc.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(ready.json?.code, "RT_ERR_SHUTTING_DOWN");
    assert.equal(typeof ready.json?.message, "string");

    const refused = await openStream(url, auth);
    assert.equal(refused.status, 503);
    const retryAfter = Number(refused.headers["retry-after"]);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${retryAfter}`);
    const body = await refusal(refused);
    assert.equal(body.code, "RT_ERR_SHUTTING_DOWN");
    assert.equal(typeof body.message, "string");

    // POSTs are still served while the drain runs, and reach the streams still open.
    const posted = await postJson(`${svc.url}/api/chat/messages`, token, {
      channel: "drain",
      content: "during the drain",
    });
    assert.equal(posted.status, 204);
    const chat = await before.waitFor(isChat);
    assert.equal(JSON.parse(chat.data).content, "during the drain");

    const close = await before.waitFor((e) => e.event === "close", DRAIN_MS + 5000);
    assert.equal(JSON.parse(close.data).code, CloseCode.Shutdown);
    assert.ok(before.events.indexOf(chat) < before.events.indexOf(close));
    // The hint the close carries: RETRY_MS plus its (pinned) share of the jitter.
    assert.equal(before.retries.at(-1), RETRY_MS + 0.75 * RETRY_JITTER_MS);
    assert.ok(before.lastEventId().length > 0);
    await before.ended;
    await stopping;
  });

  it("once the drain is over: a request arriving on an open connection gets 503 RT_ERR_SHUTTING_DOWN with Retry-After 1; the one in flight is answered", async () => {
    const svc = await startService();
    const { token } = await svc.login("Ada");
    const follows = {
      "a chat message": chatRequest(token, "after the drain"),
      "a new stream": `GET /api/events?channel=channel:general HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      "a readiness check": "GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n",
    };
    // One connection per request to refuse: each holds a chat POST whose body has not all
    // arrived, so the server, once closing, keeps it open and reads what follows on it.
    const held = await Promise.all(Object.keys(follows).map(() => holdRequest(svc.port, token)));
    // An idle keep-alive connection: the server closes it when it starts closing, after the
    // drain and after the hook's flag is set.
    const idle = await connect(svc.port);
    const idleReader = new Reader(idle);
    idle.write("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    assert.equal((await idleReader.response()).status, 200);
    const idleClosed = once(idle, "close");

    const stopping = svc.service.shutdown(0);
    try {
      await idleClosed;
      // New connections are no longer accepted.
      await assert.rejects(connect(svc.port), { code: "ECONNREFUSED" });

      const answers: Record<string, unknown> = {};
      for (const [[what, follow], { socket, reader, rest }] of zip(Object.entries(follows), held)) {
        socket.write(rest + follow);
        const inFlight = await reader.response();
        const refused = await reader.response();
        const json = JSON.parse(refused.body || "null") as { code?: unknown; message?: unknown };
        answers[what] = {
          inFlight: inFlight.status,
          status: refused.status,
          retryAfter: refused.headers["retry-after"],
          json: refused.headers["content-type"]?.startsWith("application/json"),
          code: json?.code,
          message: typeof json?.message,
        };
      }
      const refusedWith = {
        inFlight: 204,
        status: 503,
        retryAfter: "1",
        json: true,
        code: "RT_ERR_SHUTTING_DOWN",
        message: "string",
      };
      assert.deepEqual(answers, {
        "a chat message": refusedWith,
        "a new stream": refusedWith,
        "a readiness check": refusedWith,
      });
      // The refusal closes its connection: the server is not held by it.
      await Promise.all(held.map(({ reader }) => reader.closed));
    } finally {
      for (const { socket } of held) socket.destroy();
      await stopping;
    }
  });
});

function chatRequest(token: string, content: string): string {
  const body = JSON.stringify({ channel: "general", content });
  return `POST /api/chat/messages HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * A chat POST whose headers the server has taken (it answered `100 Continue`, after its
 * `onRequest` hooks ran) and whose body is held back: `rest` completes it.
 */
async function holdRequest(port: number, token: string) {
  const socket = await connect(port);
  const reader = new Reader(socket);
  const full = chatRequest(token, "in flight");
  const split = full.indexOf("\r\n\r\n");
  const body = full.slice(split + 4);
  socket.write(`${full.slice(0, split)}\r\nExpect: 100-continue\r\n\r\n${body.slice(0, 5)}`);
  assert.equal((await reader.response()).status, 100);
  return { socket, reader, rest: body.slice(5) };
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

function* zip<A, B>(as: readonly A[], bs: readonly B[]): Generator<[A, B]> {
  for (let i = 0; i < Math.min(as.length, bs.length); i++) yield [as[i] as A, bs[i] as B];
}

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * HTTP/1.1 responses read off a raw socket, one after the other (enough for these: bodies
 * with a `Content-Length`, or none).
 */
class Reader {
  #buffer = "";
  #wake: (() => void) | null = null;
  #ended = false;
  readonly closed: Promise<void>;

  constructor(socket: net.Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.#ended = true;
        this.#wake?.();
        resolve();
      });
    });
  }

  async response(): Promise<RawResponse> {
    for (;;) {
      const parsed = this.#take();
      if (parsed) return parsed;
      if (this.#ended) throw new Error(`connection closed; left: ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = null;
    }
  }

  #take(): RawResponse | null {
    const end = this.#buffer.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const [statusLine = "", ...lines] = this.#buffer.slice(0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    if (this.#buffer.length < end + 4 + length) return null;
    const body = this.#buffer.slice(end + 4, end + 4 + length);
    this.#buffer = this.#buffer.slice(end + 4 + length);
    return { status: Number(statusLine.split(" ")[1]), headers, body };
  }
}
