/**
 * 1,000 clients that stop reading: the server's memory stays within what
 * `SLOW_CLIENT_MAX_BYTES` allows per client, every stuck client is dropped, and a reading
 * client on the same pod gets every event.
 *
 * The stuck clients are HTTP/2 streams (10 sessions × 100 streams) in a child process, so this
 * process holds only the server and the reading client when it measures. Flow control stops
 * the bytes at the client's 64 KiB window, so the server has to hold the rest itself — the
 * case the cap is for. (A stuck HTTP/1.1 socket on loopback first soaks up ~4 MB of kernel
 * buffers, which is not the server's memory; ../slow-client.test.ts covers that path.)
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { metricValue, ofType, until } from "@realtime/testkit/http";
import { liveBytes, mib, startStuckClients } from "@realtime/testkit/memory";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp2 } from "@realtime/testkit/sse-client";

const CLIENTS = 1000;
const SESSIONS = 10;
const CAP = 32 * 1024;
const EVENT_BYTES = 4 * 1024;
const CHANNEL = "channel:firehose" as ChannelName;

describe("1,000 clients that stop reading", () => {
  let svc: RunningService;
  let token: string;
  let reader: http2.ClientHttp2Session;
  let child: ChildProcess | undefined;

  before(async () => {
    svc = await startService({
      HTTP2: "h2c",
      SLOW_CLIENT_MAX_BYTES: String(CAP),
      SLOW_CLIENT_MAX_STALL_MS: "600000", // only the byte cap may drop them
      MAX_CONNECTIONS_PER_USER: "0",
      RATE_LIMIT_STREAMS_MAX: "0",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
    });
    ({ token } = await svc.login("Reader"));
    reader = http2.connect(svc.url);
  });
  after(async () => {
    child?.stdin?.end();
    child?.kill();
    reader.destroy();
    await svc.stop();
  });

  it(`server memory grows by less than ${CLIENTS} × SLOW_CLIENT_MAX_BYTES; all are dropped`, async () => {
    const readerStream = await openHttp2(reader, `/api/events?channel=${CHANNEL}`, {
      authorization: `Bearer ${token}`,
    });
    const path = `/api/events?channel=${CHANNEL}`;
    child = await startStuckClients(svc.url, path, token, SESSIONS, CLIENTS / SESSIONS);
    assert.equal(svc.service.hub.connectionCount, CLIENTS + 1);

    const rssBefore = process.memoryUsage().rss;
    const before = liveBytes();
    let peak = 0;
    let events = 0;
    const content = "x".repeat(EVENT_BYTES);
    // Bounded: a stuck stream is dropped once its 64 KiB window and CAP are behind.
    while (svc.service.hub.connectionCount > 1 && events < 400) {
      for (let i = 0; i < 5; i++) {
        await svc.service.hub.publish(CHANNEL, { type: "bulk", message: `${events++}`, content });
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
      peak = Math.max(peak, liveBytes() - before);
    }
    await until(() => svc.service.hub.connectionCount === 1, "every stuck client dropped", 10_000);
    const metrics = await svc.service.metrics.render();
    assert.equal(metricValue(metrics, "sse_disconnects_total", 'reason="slow"'), CLIENTS);
    await readerStream.waitForCount(events, ofType("bulk"), 10_000);

    const after = liveBytes() - before;
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    const bound = CLIENTS * CAP;
    const report =
      `${CLIENTS} stuck clients, ${events} events of ${EVENT_BYTES} B: live heap+external ` +
      `growth peak ${mib(peak)}, after the drop ${mib(after)}; RSS growth ${mib(rssGrowth)}; ` +
      `bound ${CLIENTS} × ${CAP / 1024} KiB = ${mib(bound)}`;
    console.log(`# ${report}`);
    assert.ok(peak < bound, report);
    assert.ok(after < bound / 8, report);
    assert.ok(rssGrowth < 2 * bound, report);
  });
});
