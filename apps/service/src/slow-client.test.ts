/**
 * A client that stops reading must be cut off instead of growing the server's memory, and must
 * not hold back anyone else — over HTTP/1.1 and on a shared HTTP/2 session.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { type RunningService, startService } from "@realtime/testkit/service";
import { h2Request, openHttp1, openHttp2 } from "@realtime/testkit/sse-client";

const CHANNEL = "channel:firehose" as ChannelName;
const BOUND = 256 * 1024;
/** Events of one type (presence events share the room channels). */
const ofType = (type: string) => (e: { event?: string | undefined; data: string }) =>
  e.event === undefined && JSON.parse(e.data).type === type;
const isBulk = ofType("bulk");

/**
 * Publishes `count` events of ~15 KB, yielding to I/O after each so that the well-behaved
 * client (which lives in this process) gets to read: only the stuck one falls behind.
 */
async function flood(svc: RunningService, count: number, tag: string): Promise<void> {
  const content = "x".repeat(15_000);
  for (let i = 0; i < count; i++) {
    await svc.service.hub.publish(CHANNEL, { type: "bulk", message: `${tag}${i}`, content });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

async function disconnectsFor(svc: RunningService, reason: string): Promise<number> {
  const text = await svc.service.metrics.render();
  const m = text.match(new RegExp(`sse_disconnects_total\\{reason="${reason}"\\} (\\d+)`));
  return m ? Number(m[1]) : 0;
}

describe("slow clients", () => {
  let svc: RunningService;
  let token: string;
  before(async () => {
    svc = await startService({
      SLOW_CLIENT_MAX_BYTES: String(BOUND),
      SLOW_CLIENT_MAX_STALL_MS: "60000",
    });
    token = (await svc.login("Reader")).token;
  });
  after(() => svc.stop());

  it("HTTP/1.1: a socket that stops reading is dropped; a reading client gets everything", async () => {
    const reader = await openHttp1(`${svc.url}/api/events?channel=${CHANNEL}`, {
      authorization: `Bearer ${token}`,
    });
    // A raw socket that sends the request, reads the headers, then never reads again.
    const stuck = net.connect(svc.port, "127.0.0.1");
    stuck.setNoDelay(true);
    await new Promise<void>((resolve) => stuck.once("connect", resolve));
    stuck.write(
      `GET /api/events?channel=${CHANNEL} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    await new Promise<void>((resolve) => stuck.once("data", () => resolve()));
    stuck.pause();
    const stuckClosed = new Promise<void>((resolve) => stuck.once("close", () => resolve()));
    stuck.on("error", () => {});
    assert.equal(svc.service.hub.connectionCount, 2);

    // Far more than the kernel's socket buffers on loopback plus the bound.
    const count = 2_000;
    await flood(svc, count, "h1-");
    await reader.waitForCount(count, isBulk, 30_000);
    assert.equal(svc.service.hub.connectionCount, 1, "the stuck stream is gone");
    assert.equal(await disconnectsFor(svc, "slow"), 1);
    stuck.resume(); // let the socket see the reset/close
    await stuckClosed;
    const seen = reader.events.filter(isBulk).map((e) => JSON.parse(e.data).message);
    assert.deepEqual(
      seen,
      Array.from({ length: count }, (_, i) => `h1-${i}`),
    );
    reader.close();
  });
});

describe("slow HTTP/2 stream on a shared session", () => {
  it("is dropped alone: the other stream and POSTs on the same session keep working", async () => {
    const svc = await startService({
      HTTP2: "h2c",
      SLOW_CLIENT_MAX_BYTES: String(BOUND),
      SLOW_CLIENT_MAX_STALL_MS: "60000",
    });
    try {
      const { token } = await svc.login("Multiplexer");
      const headers = { authorization: `Bearer ${token}` };
      const session = http2.connect(svc.url);
      const stalled = await openHttp2(session, `/api/events?channel=${CHANNEL}`, headers);
      const other = await openHttp2(session, "/api/events?channel=channel:quiet", headers);
      stalled.pause();
      await flood(svc, 600, "h2-");
      // The stalled stream's flow-control window is exhausted; it must be cut off...
      await stalled.ended;
      assert.equal(await disconnectsFor(svc, "slow"), 1);
      // ...while the session, its other stream and new requests on it still work.
      const posted = await h2Request(
        session,
        {
          ":method": "POST",
          ":path": "/api/chat/messages",
          "content-type": "application/json",
          ...headers,
        },
        JSON.stringify({ channel: "quiet", content: "still here" }),
      );
      assert.equal(posted.status, 204);
      const event = await other.waitFor(ofType("chat"));
      assert.equal(JSON.parse(event.data).content, "still here");
      session.close();
    } finally {
      await svc.stop();
    }
  });
});

describe("the fan-out queue in /metrics", () => {
  let svc: RunningService;
  let token: string;
  before(async () => {
    // Bounds far above what the test queues and how long it stalls (a loaded machine floods
    // slowly: past the default 10 s stall bound, found by test:stress): the stream stays, its
    // queue shows.
    svc = await startService({
      SLOW_CLIENT_MAX_BYTES: String(256 * 1024 * 1024),
      SLOW_CLIENT_MAX_STALL_MS: String(600_000),
    });
    token = (await svc.login("Queue")).token;
  });
  after(() => svc.stop());

  const gauge = async (name: string) => {
    const text = await svc.service.metrics.render();
    return Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  };

  it("sse_queued_bytes and sse_stalled_streams rise behind a client that stops reading, and fall when it reads", async () => {
    assert.equal(await gauge("sse_queued_bytes"), 0);
    assert.equal(await gauge("sse_stalled_streams"), 0);
    const stuck = net.connect(svc.port, "127.0.0.1");
    await new Promise<void>((resolve) => stuck.once("connect", resolve));
    stuck.write(
      `GET /api/events?channel=${CHANNEL} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    );
    await new Promise<void>((resolve) => stuck.once("data", () => resolve()));
    stuck.pause();
    try {
      // ~30 MB: more than loopback's socket buffers, so the rest waits in the pod.
      await flood(svc, 2_000, "q-");
      const queued = await gauge("sse_queued_bytes");
      assert.ok(queued > 1_000_000, `queued ${queued} bytes`);
      assert.equal(await gauge("sse_stalled_streams"), 1);
      stuck.resume();
      stuck.on("data", () => {});
      const deadline = Date.now() + 30_000;
      while ((await gauge("sse_queued_bytes")) > 0) {
        assert.ok(Date.now() < deadline, "the queue drains once the client reads");
        await new Promise((resolve) => stuck.once("data", resolve));
      }
      assert.equal(svc.service.hub.connectionCount, 1, "never dropped");
    } finally {
      stuck.destroy();
    }
  });
});
