/**
 * Attack (issue 14, finding 3): resumes from an old cursor on 16 busy rooms by clients that then
 * do not read. Each asks for 16 × 250 events of 4 KiB (16 MiB) from history; a pod that read a
 * replay whole before writing it held all of that in its heap per stream, and six such streams
 * killed a 512 MB pod. Replays are read a page at a time, the next only once the peer drained
 * the last, and at most MAX_REPLAYS run at once (MAX_REPLAYS_PER_USER each): so 32 stuck
 * resumers from 4 users hold at most MAX_REPLAYS pages, the rest wait without reading, and a
 * well-behaved pair of users on the same pod keep chatting. The history lives in the machine's
 * shared Redis under a prefix of this test (Redis replies are fresh strings: the costly case).
 *
 * The stuck clients are HTTP/2 streams in a child process (as in memory.test.ts), so this
 * process holds only the server and the bystanders when it measures.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { ofType, until } from "@realtime/testkit/http";
import { liveBytes, mib, startStuckClients } from "@realtime/testkit/memory";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp2 } from "@realtime/testkit/sse-client";
import { Redis } from "ioredis";

const ROOMS = Array.from({ length: 16 }, (_, i) => `channel:busy${i}`);
const EVENTS_PER_ROOM = 250;
const EVENT_BYTES = 4 * 1024;
const USERS = 4;
const STREAMS_PER_USER = 8;
const MAX_REPLAYS = 8;

describe("resumes from an old cursor by clients that do not read", () => {
  const prefix = `t_replay_${randomBytes(4).toString("hex")}`;
  let svc: RunningService;
  let redis: Redis;
  let session: http2.ClientHttp2Session;
  const children: ChildProcess[] = [];

  before(async () => {
    redis = new Redis("redis://127.0.0.1:6379");
    svc = await startService({
      HTTP2: "h2c",
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_PREFIX: prefix,
      MAX_REPLAYS: String(MAX_REPLAYS),
      MAX_REPLAYS_PER_USER: "2",
      SLOW_CLIENT_MAX_STALL_MS: "600000", // they stay as long as the attacker wants
      MAX_CONNECTIONS_PER_USER: "0",
      RATE_LIMIT_STREAMS_MAX: "0",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
      RATE_LIMIT_CHAT_MAX: "0",
      CHANNEL_PUBLISH_MAX: "0",
    });
    session = http2.connect(svc.url);
  });
  after(async () => {
    for (const child of children) {
      child.stdin?.end();
      child.kill();
    }
    session?.destroy();
    await svc?.stop();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  /** Starts a child holding `count` resuming streams of one user that never read. */
  async function stuck(token: string, path: string, count: number): Promise<void> {
    children.push(await startStuckClients(svc.url, path, token, 1, count));
  }

  it("hold at most MAX_REPLAYS pages; the rest wait; bystanders chat on", async () => {
    const bob = await svc.login("Bob");
    const carol = await svc.login("Carol");
    const bobStream = await openHttp2(session, "/api/events?channel=channel:lobby", {
      authorization: `Bearer ${bob.token}`,
    });
    const channels = ROOMS.map((r) => `channel=${r}`).join("&");
    // The old cursor: all 16 rooms before their history was written.
    const first = await openHttp2(session, `/api/events?${channels}`, {
      authorization: `Bearer ${bob.token}`,
    });
    const ready = await first.waitFor((e) => e.event === "ready");
    first.close();
    const content = "x".repeat(EVENT_BYTES);
    for (let n = 0; n < EVENTS_PER_ROOM; n++) {
      await Promise.all(
        ROOMS.map((room) =>
          svc.service.hub.publish(room as `channel:${string}`, { type: "bulk", content }),
        ),
      );
    }

    const before = liveBytes();
    const attackers = await Promise.all(
      Array.from({ length: USERS }, (_, i) => svc.login(`Mallory${i}`)),
    );
    const path = `/api/events?${channels}&lastEventId=${ready.id}`;
    await Promise.all(attackers.map((a) => stuck(a.token, path, STREAMS_PER_USER)));
    await until(
      () => svc.service.hub.replays.running === MAX_REPLAYS,
      "the pod's replay slots are taken",
    );
    assert.deepEqual(svc.service.hub.replays, {
      running: MAX_REPLAYS,
      waiting: USERS * STREAMS_PER_USER - MAX_REPLAYS,
    });

    // Bystanders meanwhile: every message, in order.
    let peak = 0;
    for (let i = 1; i <= 20; i++) {
      const reply = await svc.post("/api/chat/messages", carol.token, {
        channel: "lobby",
        content: `m${i}`,
      });
      assert.equal(reply.status, 204, JSON.stringify(reply.body));
      await bobStream.waitForCount(i, ofType("chat"));
      peak = Math.max(peak, liveBytes() - before);
    }
    const chats = bobStream.events.filter(ofType("chat")).map((e) => JSON.parse(e.data).content);
    assert.deepEqual(
      chats,
      Array.from({ length: 20 }, (_, i) => `m${i + 1}`),
    );

    // What one replay may hold: a page of 64 events as read, encoded, and queued (64 KiB
    // high-water mark plus the HTTP/2 window). Reading whole replays would have held 32 ×
    // 16 MiB.
    const perReplay = 64 * EVENT_BYTES * 3 + 256 * 1024;
    const bound = MAX_REPLAYS * perReplay + 16 * 1024 * 1024;
    const whole = USERS * STREAMS_PER_USER * ROOMS.length * EVENTS_PER_ROOM * EVENT_BYTES;
    const report =
      `${USERS * STREAMS_PER_USER} stuck resumers, replays of ${mib(whole / (USERS * STREAMS_PER_USER))} ` +
      `each: live heap+external growth peak ${mib(peak)}; bound ${mib(bound)} ` +
      `(whole replays: ${mib(whole)})`;
    console.log(`# ${report}`);
    assert.ok(peak < bound, report);

    // The attacker goes: every slot and place is given back.
    for (const child of children.splice(0)) {
      child.stdin?.end();
      child.kill();
    }
    await until(
      () => svc.service.hub.replays.running === 0 && svc.service.hub.replays.waiting === 0,
      "slots freed",
      10_000,
    );
    bobStream.close();
  });
});
