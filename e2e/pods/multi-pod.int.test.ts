/**
 * Two real service processes on one redis-server this file starts itself (never the shared
 * 6379): events posted on one pod reach streams on the other exactly once and in order,
 * subscriptions follow local subscribers (PUBSUB NUMSUB), and hostile cursors never cause a
 * 5xx.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { channelTag, decodeCursor, epochTag } from "@realtime/protocol";
import { login, postJson } from "@realtime/testkit/load";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { redisCli, startRedis, type TestRedis } from "@realtime/testkit/redis";
import { crossPodChat, idempotentAcrossPods, subscriberCounts } from "@realtime/testkit/scenarios";
import { StreamClient } from "@realtime/testkit/stream";

describe("two pods on one Redis", { timeout: 180_000 }, () => {
  let redis: TestRedis;
  let a: Pod;
  let b: Pod;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    redis = await startRedis();
    [a, b] = (await withPods(2, { REDIS_URL: redis.url })) as [Pod, Pod];
  });
  after(async () => {
    await stopPods([a, b]);
    await redis?.stop();
    release?.();
  });

  it("subscribe on B, post on A: 2,000 events on 4 channels, exactly once and in order", async () => {
    await crossPodChat(a, b, {
      channels: ["channel:one", "channel:two", "channel:three", "channel:four"],
      events: 2_000,
      posters: 8,
    });
  });

  it("one Idempotency-Key posted to both pods at once publishes exactly one event", async () => {
    await idempotentAcrossPods(a, b);
  });

  it("a pod subscribes to a channel only while it has a local stream (PUBSUB NUMSUB)", async () => {
    await subscriberCounts(a, b, "channel:numsub", async (channel) => {
      const reply = await redisCli(redis.port, "PUBSUB", "NUMSUB", `realtime:{${channel}}`);
      return Number(reply.split("\n")[1]);
    });
  });

  it("a garbage, foreign-epoch, ahead or 10 kB cursor gets a reset or a 400, never a 5xx", async () => {
    const channel = "channel:cursors";
    const { token } = await login(a.url, "Cursor");
    for (let i = 0; i < 5; i++) {
      const { status } = await postJson(a.url, "/api/chat/messages", token, {
        channel,
        content: `c${i}`,
      });
      assert.equal(status, 204);
    }
    const tag = channelTag(channel);
    const cases: { name: string; cursor: string; inQuery?: boolean; expect: string | 400 }[] = [
      { name: "garbage", cursor: "not-a-cursor!", expect: "unknown_cursor" },
      { name: "bad version", cursor: "9.abcdefgh1", expect: "unknown_cursor" },
      { name: "duplicate entries", cursor: `1.${tag}aaaa1.${tag}aaaa2`, expect: "unknown_cursor" },
      { name: "huge offset", cursor: `1.${tag}aaaazzzzzzzzzzz`, expect: "unknown_cursor" },
      { name: "empty entry", cursor: "1..", expect: "unknown_cursor" },
      {
        name: "foreign epoch",
        cursor: `1.${tag}${epochTag("someone-elses-epoch")}3`,
        expect: "epoch_changed",
      },
      { name: "10 kB header", cursor: `1.${"A".repeat(10_240)}`, expect: "unknown_cursor" },
      {
        name: "10 kB of entries",
        cursor: `1${`.${tag}aaaa1`.repeat(1_100)}`,
        expect: "unknown_cursor",
      },
      { name: "10 kB query", cursor: "x".repeat(10_240), inQuery: true, expect: 400 },
      { name: "garbage query", cursor: "%%%", inQuery: true, expect: "unknown_cursor" },
    ];
    // A cursor ahead of the channel, in the channel's real epoch: take the epoch from a stream.
    const probe = new StreamClient(token, [channel]);
    assert.equal(await probe.connect(b.url), 200);
    await probe.until(
      () => probe.lastEventId !== "",
      5_000,
      () => "no starting cursor",
    );
    probe.close();
    const own = probe.lastEventId.slice(2, 10);
    assert.equal(own.slice(0, 4), tag);
    cases.push({ name: "ahead of the channel", cursor: `1.${own}zz`, expect: "unknown_cursor" });
    // Last: the cursor the previous stream ended with continues with nothing missed.
    cases.push({ name: "current", cursor: "", expect: "none" });
    let lastCursor = "";

    for (const c of cases) {
      const client = new StreamClient(token, [channel, "channel:other"]);
      try {
        const cursor = c.name === "current" ? lastCursor : c.cursor;
        const status = await client.connect(b.url, { cursor, cursorInQuery: c.inQuery });
        if (c.expect === 400) {
          assert.equal(status, 400, `${c.name}: ${client.lastErrorBody}`);
          continue;
        }
        assert.equal(status, 200, `${c.name}: ${status} ${client.lastErrorBody}`);
        // The stream goes live after the reset: the next event arrives.
        const { status: posted } = await postJson(a.url, "/api/chat/messages", token, {
          channel,
          content: `after ${c.name}`,
        });
        assert.equal(posted, 204);
        const log = client.log.get(channel);
        assert.ok(log);
        await client.until(
          () => log.events.some((e) => e.json.content === `after ${c.name}`),
          5_000,
          () => `${c.name}: no live event after the start`,
        );
        const expected = c.expect === "none" ? [] : [c.expect];
        assert.deepEqual(log.resets, expected, c.name);
        // An undecodable cursor resets every channel; a decodable one without an entry for
        // a channel starts that channel from now.
        assert.deepEqual(
          client.log.get("channel:other")?.resets,
          decodeCursor(cursor) === null ? ["unknown_cursor"] : [],
          `${c.name}: other channel`,
        );
        // Other features (presence) publish on the channel too: look at the chat only.
        assert.deepEqual(
          log.events.filter((e) => e.json.type === "chat").map((e) => e.json.content),
          [`after ${c.name}`],
          `${c.name}: no replay after a reset`,
        );
        lastCursor = client.lastEventId;
      } finally {
        client.close();
      }
    }

    // Bytes no HTTP client would send (obs-text, a NUL-free binary mess): still never a 5xx.
    const raw = await rawStatus(b.port, token, channel, "\xff\xfe1.\x80\x81");
    assert.ok(raw === 200 || raw === 400, `raw bytes: ${raw}`);
  });
});

/** Sends a GET with a Last-Event-ID of raw latin1 bytes over a bare socket; returns the status. */
function rawStatus(port: number, token: string, channel: string, cursor: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let head = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      head += chunk;
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (match) {
        socket.destroy();
        resolve(Number(match[1]));
      }
    });
    socket.once("error", reject);
    socket.write(
      `GET /api/events?channel=${channel} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        `Authorization: Bearer ${token}\r\nLast-Event-ID: ${cursor}\r\n\r\n`,
      "latin1",
    );
  });
}
