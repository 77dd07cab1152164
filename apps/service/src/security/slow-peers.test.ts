/**
 * Slow and stuck peers: slowloris headers, a trickled request body, a connection that never
 * sends a request, over HTTP/1.1 and HTTP/2. Each is cut off shortly after
 * `HEADERS_TIMEOUT_MS`/`REQUEST_TIMEOUT_MS`, while an SSE stream opened on the same pod (on
 * HTTP/2: on the same session) outlives those timeouts many times over and keeps delivering.
 * A stream whose client stops reading: ../slow-client.test.ts (HTTP/1.1 and a shared HTTP/2
 * session) and memory.test.ts (1,000 of them).
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { ofType, openStream, postJson, type Stream } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import { h2Request, openHttp2 } from "@realtime/testkit/sse-client";
import { checkingInterval } from "./http.ts";

const HEADERS_TIMEOUT = 400;
const REQUEST_TIMEOUT = 800;
/** The latest a timed-out peer may still be connected: its timeout, one check, and slack. */
const CUT_WITHIN = REQUEST_TIMEOUT + checkingInterval(HEADERS_TIMEOUT) + 700;

const ENV = {
  HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT),
  REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT),
  // No heartbeats during the test: the stream is idle, and must still outlive the timeouts.
  HEARTBEAT_INTERVAL_MS: "600000",
};

interface Cut {
  readonly afterMs: number;
  readonly received: string;
}

/**
 * Connects, writes `head`, then one byte of `drip` every 100 ms (bounded), until the server
 * closes the connection; resolves with how long that took and what the server sent.
 */
function trickle(port: number, head: string | Buffer, drip: string, maxMs = 5000): Promise<Cut> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    let i = 0;
    const timer = setInterval(() => {
      if (Date.now() - started > maxMs) {
        clearInterval(timer);
        socket.destroy();
        reject(new Error(`still connected after ${maxMs} ms`));
        return;
      }
      if (drip.length > 0 && socket.writable) socket.write(drip[i++ % drip.length] as string);
    }, 100);
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
    });
    socket.on("error", () => {});
    socket.once("close", () => {
      clearInterval(timer);
      resolve({ afterMs: Date.now() - started, received });
    });
    socket.once("connect", () => socket.write(head));
  });
}

describe("slow peers over HTTP/1.1", () => {
  let svc: RunningService;
  let good: { token: string };
  let stream: Stream;
  let openedAt: number;

  before(async () => {
    svc = await startService(ENV);
    good = await svc.login("Patient");
    stream = await openStream(`${svc.url}/api/events?channel=channel:slow`, {
      authorization: `Bearer ${good.token}`,
    });
    openedAt = Date.now();
    assert.equal(stream.status, 200);
  });
  after(async () => {
    stream.close();
    await svc.stop();
  });

  it("slowloris headers, a trickled body and a silent connection are all cut off", async () => {
    const [headers, body, silent] = await Promise.all([
      trickle(svc.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", "abcdefgh"),
      trickle(
        svc.port,
        "POST /api/chat/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          `Content-Length: 1000\r\nAuthorization: Bearer ${good.token}\r\n\r\n{"channel":"slow",`,
        " ",
      ),
      trickle(svc.port, "", ""),
    ]);
    console.log(
      `# cut after: slow headers ${headers.afterMs} ms, slow body ${body.afterMs} ms, silent ${silent.afterMs} ms`,
    );
    for (const [what, cut] of [
      ["slow headers", headers],
      ["slow body", body],
      ["silent", silent],
    ] as const) {
      assert.ok(cut.afterMs <= CUT_WITHIN, `${what} cut after ${cut.afterMs} ms`);
      assert.ok(cut.received === "" || /^HTTP\/1\.1 408 /.test(cut.received), cut.received);
    }
    // The slow body never reached the room: once a message posted now has arrived, anything
    // the cut request had published would have too.
    const marker = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "slow",
      content: "after the cuts",
    });
    assert.equal(marker.status, 204);
    await stream.waitFor(
      (e) => ofType("chat")(e) && JSON.parse(e.data).content === "after the cuts",
    );
    assert.deepEqual(
      stream.events.filter(ofType("chat")).map((e) => JSON.parse(e.data).content),
      ["after the cuts"],
    );
  });

  it("the SSE stream outlives the request timeouts many times over and still delivers", async () => {
    const until = openedAt + 3 * REQUEST_TIMEOUT;
    if (Date.now() < until) await delay(until - Date.now());
    const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "slow",
      content: "still here",
    });
    assert.equal(posted.status, 204);
    await stream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === "still here");
    assert.equal(svc.service.hub.connectionCount, 1);
  });
});

describe("slow peers over HTTP/2 (h2c)", () => {
  let svc: RunningService;
  let token: string;
  before(async () => {
    svc = await startService({ ...ENV, HTTP2: "h2c" });
    ({ token } = await svc.login("Multiplexed"));
  });
  after(() => svc.stop());

  it("a stalled request body resets its own stream only; the session's stream and POSTs go on", async () => {
    const session = http2.connect(svc.url);
    const auth = { authorization: `Bearer ${token}` };
    try {
      const sse = await openHttp2(session, "/api/events?channel=channel:h2slow", auth);
      assert.equal(sse.status, 200);
      const openedAt = Date.now();
      const stalled = session.request({
        ":method": "POST",
        ":path": "/api/chat/messages",
        "content-type": "application/json",
        ...auth,
      });
      stalled.on("error", () => {});
      stalled.write('{"channel":"h2slow",'); // and never the rest
      await new Promise<void>((resolve) => stalled.once("close", () => resolve()));
      const cutAfter = Date.now() - openedAt;
      console.log(`# h2 stalled body reset after ${cutAfter} ms`);
      assert.equal(stalled.rstCode, http2.constants.NGHTTP2_CANCEL);
      assert.ok(cutAfter <= CUT_WITHIN, `stalled body cut after ${cutAfter} ms`);
      assert.ok(!session.destroyed, "the session lives on");
      const posted = await h2Request(
        session,
        {
          ":method": "POST",
          ":path": "/api/chat/messages",
          "content-type": "application/json",
          ...auth,
        },
        JSON.stringify({ channel: "h2slow", content: "same session" }),
      );
      assert.equal(posted.status, 204);
      const event = await sse.waitFor(ofType("chat"));
      assert.equal(JSON.parse(event.data).content, "same session");
    } finally {
      session.close();
    }
  });

  it("a session that never completes a request is closed after HEADERS_TIMEOUT_MS", async () => {
    const preface = Buffer.concat([
      Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"),
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), // empty SETTINGS
    ]);
    const cut = await trickle(svc.port, preface, "");
    console.log(`# h2 idle session closed after ${cut.afterMs} ms`);
    assert.ok(cut.afterMs <= HEADERS_TIMEOUT + 700, `idle session cut after ${cut.afterMs} ms`);
  });
});
