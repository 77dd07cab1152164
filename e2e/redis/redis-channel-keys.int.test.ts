/**
 * Attack (issue 14, finding 2): one signed-in user makes the shared Redis keep keys for rooms
 * nobody uses — opening and closing streams on fresh room names (presence joins, `online` and
 * `offline` events, position reads) and reading the presence and history of fresh rooms. Every key the
 * attack leaves lives at most the channel idle TTL (`CHANNEL_IDLE_TTL_MS`; here 2 s), except
 * the presence decisions kept a minute for retries; once the attacker stops, the keys go with
 * nothing reading them again. Meanwhile a well-behaved pair of users on the same pod keep
 * chatting, every message delivered once, in order.
 *
 * Runs on the machine's shared Redis under a prefix of its own (it kills nothing). The rate
 * limits on stream opens, presence and history reads are off: this is what is left past them (an
 * attacker with many accounts); they are tested in rate-limit.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type Bystanders, startBystanders } from "@realtime/testkit/bystanders";
import { openStream, request, until } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import { Redis } from "ioredis";

const IDLE_TTL_MS = 2_000;
/** The presence store keeps a decision this long for a retry of its call. */
const REPLY_TTL_MS = 60_000;

describe("keys one user can make the shared Redis keep", () => {
  const prefix = `t_keys_${randomBytes(4).toString("hex")}`;
  let redis: Redis;
  let svc: RunningService;
  let bystanders: Bystanders;
  let attacker: { token: string };

  before(async () => {
    redis = new Redis("redis://127.0.0.1:6379");
    svc = await startService({
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_PREFIX: prefix,
      CHANNEL_IDLE_TTL_MS: String(IDLE_TTL_MS),
      PRESENCE_GRACE_MS: "0",
      MAX_CONNECTIONS_PER_USER: "0",
      RATE_LIMIT_STREAMS_MAX: "0",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
      RATE_LIMIT_PRESENCE_MAX: "0",
      RATE_LIMIT_HISTORY_MAX: "0",
      RATE_LIMIT_CHAT_MAX: "0",
      CHANNEL_PUBLISH_MAX: "0",
    });
    attacker = await svc.login("Mallory");
    bystanders = await startBystanders(svc);
  });
  after(async () => {
    bystanders?.close();
    await svc?.stop();
    const keys = await scan(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  async function scan(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    return keys;
  }

  /** Keys of the rooms the attacker named, with their TTL in ms (-1: none). */
  async function attackKeys(): Promise<Map<string, number>> {
    const keys = (await scan(`${prefix}:*`)).filter((k) => /\{channel:(fresh|peek)/.test(k));
    const ttls = new Map<string, number>();
    for (const key of keys) ttls.set(key, await redis.pttl(key));
    return ttls;
  }

  it("opens, closes, presence and history reads on fresh rooms: every key lives one idle TTL, then goes", async () => {
    let rooms = 0;
    for (let round = 0; round < 4; round++) {
      const streams = await Promise.all(
        Array.from({ length: 10 }, () => {
          const query = Array.from({ length: 16 }, () => `channel=channel:fresh${++rooms}`);
          return openStream(`${svc.url}/api/events?${query.join("&")}`, {
            authorization: `Bearer ${attacker.token}`,
          });
        }),
      );
      await Promise.all(
        streams.map(async (s) => {
          assert.equal(s.status, 200, s.text());
          await s.waitFor((e) => e.event === "ready");
          s.close();
        }),
      );
      for (let i = 0; i < 75; i++) {
        const reply = await request(`${svc.url}/api/channels/peek${++rooms}/presence`, {
          headers: { authorization: `Bearer ${attacker.token}` },
        });
        assert.equal(reply.status, 200, reply.text);
      }
      for (let i = 0; i < 25; i++) {
        const reply = await request(`${svc.url}/api/channels/peek${++rooms}/messages`, {
          headers: { authorization: `Bearer ${attacker.token}` },
        });
        assert.equal(reply.status, 200, reply.text);
      }
      await bystanders.chat();
    }
    assert.equal(rooms, 4 * (160 + 75 + 25));

    // While the rooms are fresh: no key of theirs outlives the idle TTL (presence decisions
    // kept for retries excepted), none lives for ever.
    const during = await attackKeys();
    assert.ok(during.size > 0, "the attack did write keys (or this test would prove nothing)");
    for (const [key, ttl] of during) {
      const bound = key.includes(":presence-reply:") ? REPLY_TTL_MS : IDLE_TTL_MS;
      // -2: gone between SCAN and PTTL. A presence hash of a user still leaving may have none
      // for a moment: it empties itself (checked below).
      if (ttl === -2 || (ttl === -1 && key.includes(":presence-"))) continue;
      // 0: expiring this very millisecond (the attack took most of a TTL on a busy machine).
      assert.ok(ttl >= 0 && ttl <= bound, `${key} lives ${ttl} ms (bound ${bound})`);
    }

    // The attacker stops. Nothing reads those rooms again; their keys go by themselves.
    await until(
      async () => [...(await attackKeys()).keys()].every((k) => k.includes(":presence-reply:")),
      "every key of the fresh rooms is gone (but the minute-long presence decisions)",
      IDLE_TTL_MS * 3 + 5_000,
    );
    await bystanders.chat();
    bystanders.assertHeardEverything();
  });

  it("a room someone is in keeps its position past the idle TTL: no reset for its clients", async () => {
    // Bob has been in the lobby throughout: the pod reads its position every quarter TTL.
    const { epoch, offset } = await svc.service.broker.position("channel:lobby");
    await new Promise((resolve) => setTimeout(resolve, IDLE_TTL_MS * 2));
    await bystanders.chat();
    const after = await svc.service.broker.position("channel:lobby");
    assert.deepEqual(after, { epoch, offset: offset + 1 }, "the same epoch, counting on");
    bystanders.assertHeardEverything();
  });
});
