/**
 * The limits hold across pods in Redis mode: one user's chat budget, one room's broadcast
 * budget, one user's stream count, and the rate of one user's (and one address's) stream opens
 * and presence reads are shared by every pod (a user cannot multiply them by spreading over
 * pods), and the stream count heals by itself when a pod dies holding streams (SIGKILL: no
 * release ever sent). Well-behaved clients on the same pods are unaffected. The first suite
 * uses its own redis-server (it kills a pod); the rate suite the shared one, under a prefix of
 * its own.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  metricValue,
  ofType,
  openStream,
  postJson,
  type Reply,
  refusal,
  request,
  type Stream,
  until,
} from "@realtime/testkit/http";
import { POD_SECRET, type Pod, startPod } from "@realtime/testkit/pods";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { type RunningService, startService } from "@realtime/testkit/service";
import { Redis } from "ioredis";

const LEASE_TTL = 1500;
const PREFIX = "sec";

function assertRateLimited(reply: Reply, what: string) {
  assert.equal(reply.status, 429, `${what}: ${reply.text}`);
  assert.equal(reply.json?.code, "RT_ERR_RATE_LIMITED", what);
  assert.ok(Number(reply.headers["retry-after"]) >= 1, what);
}

describe("limits shared through Redis", () => {
  let redis: TestRedis;
  let client: Redis;
  let a: RunningService;
  let b: RunningService;
  let pod: Pod;
  let good: { token: string };
  let goodStream: Stream;
  const streams: Stream[] = [];
  const env: Record<string, string> = {};

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
    Object.assign(env, {
      REDIS_URL: redis.url,
      REDIS_PREFIX: PREFIX,
      JWT_SECRET: POD_SECRET,
      RATE_LIMIT_WINDOW_MS: "60000",
      RATE_LIMIT_CHAT_MAX: "4",
      CHANNEL_PUBLISH_MAX: "6",
      MAX_CONNECTIONS_PER_USER: "2",
      CONNECTION_LEASE_TTL_MS: String(LEASE_TTL),
      // The healing test reopens as fast as it can; the open rate is the other suite's.
      RATE_LIMIT_STREAMS_MAX: "0",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
    });
    [a, b, pod] = await Promise.all([startService(env), startService(env), startPod(env)]);
    good = await a.login("Good");
    // The well-behaved client listens on A and posts through B.
    goodStream = await openStream(`${a.url}/api/events?channel=channel:calm`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream?.close();
    for (const s of streams) s.close();
    await Promise.all([a?.stop(), b?.stop(), pod?.kill("SIGKILL")]);
    client?.disconnect();
    await redis?.stop();
  });

  async function goodStillWorks(content: string) {
    const posted = await postJson(`${b.url}/api/chat/messages`, good.token, {
      channel: "calm",
      content,
    });
    assert.equal(posted.status, 204, posted.text);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  async function stream(base: string, token: string, channel = "channel:many") {
    const s = await openStream(`${base}/api/events?channel=${channel}`, {
      authorization: `Bearer ${token}`,
    });
    if (s.status === 200) streams.push(s);
    return s;
  }

  it("one user's chat budget is shared by every pod", async () => {
    const { token } = await a.login("Spreader");
    const post = (svc: RunningService, i: number) =>
      postJson(`${svc.url}/api/chat/messages`, token, { channel: "spread", content: `${i}` });
    const statuses = [];
    for (const [i, svc] of [a, b, a, b].entries()) statuses.push((await post(svc, i)).status);
    assert.deepEqual(statuses, [204, 204, 204, 204]);
    assertRateLimited(await post(a, 5), "5th post, on A");
    assertRateLimited(await post(b, 6), "6th post, on B");
    await goodStillWorks("chat budget");
  });

  it("one room's broadcast budget is shared by every pod", async () => {
    const users = await Promise.all(["H1", "H2", "H3", "H4"].map((name) => b.login(name)));
    const post = (svc: RunningService, token: string, i: number) =>
      postJson(`${svc.url}/api/chat/messages`, token, { channel: "hot", content: `${i}` });
    for (let i = 0; i < 6; i++) {
      const user = users[i % 3] as { token: string };
      const reply = await post(i % 2 ? a : b, user.token, i);
      assert.equal(reply.status, 204, `post ${i}: ${reply.text}`);
    }
    const last = users[3] as { token: string };
    const refusedA = await post(a, last.token, 7);
    assertRateLimited(refusedA, "7th post into the room, on A");
    assert.match(String(refusedA.json?.message), /channel:hot is over its broadcast budget/);
    assertRateLimited(await post(b, last.token, 8), "8th, on B");
    await goodStillWorks("room budget");
    const metrics = await a.service.metrics.render();
    assert.equal(metricValue(metrics, "http_requests_rate_limited_total", 'limit="channel"'), 1);
  });

  it("one user's streams are counted over every pod", async () => {
    const { token } = await a.login("Tabs");
    assert.equal((await stream(a.url, token)).status, 200);
    const onB = await stream(b.url, token);
    assert.equal(onB.status, 200);
    const third = await stream(a.url, token);
    assert.equal(third.status, 429);
    assert.equal((await refusal(third)).code, "RT_ERR_TOO_MANY_CONNECTIONS");
    const metrics = await a.service.metrics.render();
    assert.equal(
      metricValue(metrics, "sse_connections_refused_total", 'reason="per_user_limit"'),
      1,
    );
    await goodStillWorks("stream cap");
    // Closing the stream on B frees a slot for A.
    onB.close();
    await until(
      async () => {
        const s = await stream(a.url, token);
        if (s.status !== 200) await s.ended;
        return s.status === 200;
      },
      "a slot freed on B is usable on A",
      3000,
      50,
    );
  });

  it("a pod SIGKILLed with a user's streams stops counting within the lease TTL", async () => {
    const { token, user } = await a.login("Orphan");
    for (let i = 0; i < 2; i++) assert.equal((await stream(pod.url, token)).status, 200);
    const refused = await stream(a.url, token);
    assert.equal(refused.status, 429);
    await refused.ended;

    await pod.kill("SIGKILL");
    const killedAt = Date.now();
    let refusals = 0;
    await until(
      async () => {
        const s = await stream(a.url, token);
        if (s.status === 200) return true;
        refusals++;
        await s.ended;
        return false;
      },
      "the dead pod's streams expire",
      LEASE_TTL + 2000,
      100,
    );
    const healedAfter = Date.now() - killedAt;
    assert.ok(refusals > 0, "the dead pod's count held until it expired");
    assert.ok(healedAfter <= LEASE_TTL + 1000, `healed after ${healedAfter} ms`);
    await goodStillWorks("after a pod died");

    // Bounded: one field per pod, and the key expires.
    const key = `${PREFIX}:conns:${user.id}`;
    const fields = await client.hgetall(key);
    assert.ok(Object.keys(fields).length <= 2, JSON.stringify(fields));
    const ttl = await client.pttl(key);
    assert.ok(ttl > 0 && ttl <= LEASE_TTL, `PTTL ${ttl}`);
  });
});

describe("stream-open and presence-read rates shared through Redis", () => {
  const STREAMS = 4;
  const PRESENCE = 4;
  const PER_IP = 6;
  const prefix = `t_rates_${randomBytes(4).toString("hex")}`;
  let client: Redis;
  let a: RunningService;
  let b: RunningService;
  let good: { token: string };
  let goodStream: Stream;

  before(async () => {
    client = new Redis("redis://127.0.0.1:6379");
    const env = {
      REDIS_URL: "redis://127.0.0.1:6379",
      REDIS_PREFIX: prefix,
      RATE_LIMIT_WINDOW_MS: "60000",
      RATE_LIMIT_STREAMS_MAX: String(STREAMS),
      RATE_LIMIT_PRESENCE_MAX: String(PRESENCE),
      RATE_LIMIT_STREAMS_PER_IP_MAX: String(PER_IP),
    };
    [a, b] = await Promise.all([startService(env), startService(env)]);
    good = await a.login("Good");
    goodStream = await openStream(
      `${a.url}/api/events?channel=channel:calm`,
      { authorization: `Bearer ${good.token}` },
      { localAddress: "127.0.0.20" },
    );
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream?.close();
    await Promise.all([a?.stop(), b?.stop()]);
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  async function goodStillWorks(content: string) {
    const posted = await postJson(`${b.url}/api/chat/messages`, good.token, {
      channel: "calm",
      content,
    });
    assert.equal(posted.status, 204, posted.text);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  /** Opens a stream on `svc` and closes it at once; resolves with the refusal when refused. */
  async function openAndClose(svc: RunningService, token: string, room: string, from: string) {
    const s = await openStream(
      `${svc.url}/api/events?channel=channel:${room}`,
      { authorization: `Bearer ${token}` },
      { localAddress: from },
    );
    s.close();
    if (s.status === 200) return { status: 200, code: "" };
    return { status: s.status, code: String((await refusal(s)).code) };
  }

  it("one user's stream opens are counted over every pod", async () => {
    const { token } = await a.login("Churner");
    const statuses = [];
    for (let i = 0; i < STREAMS * 2; i++) {
      const reply = await openAndClose(i % 2 ? b : a, token, `fresh-${i}`, "127.0.0.21");
      statuses.push(reply.status === 200 ? "200" : reply.code);
    }
    assert.deepEqual(statuses, [
      ...Array(STREAMS).fill("200"),
      ...Array(STREAMS).fill("RT_ERR_RATE_LIMITED"),
    ]);
    // Each pod counts the refusals it made.
    for (const svc of [a, b]) {
      const metrics = await svc.service.metrics.render();
      assert.equal(metricValue(metrics, "http_requests_rate_limited_total", 'limit="streams"'), 2);
    }
    await goodStillWorks("stream rate");
  });

  it("one user's presence reads are counted over every pod", async () => {
    const { token } = await b.login("Peeker");
    const read = (svc: RunningService, i: number) =>
      request(`${svc.url}/api/channels/channel:peek-${i}/presence`, {
        headers: { authorization: `Bearer ${token}` },
      });
    const statuses = [];
    for (let i = 0; i < PRESENCE * 2; i++) statuses.push((await read(i % 2 ? a : b, i)).status);
    assert.deepEqual(statuses, [...Array(PRESENCE).fill(200), ...Array(PRESENCE).fill(429)]);
    assertRateLimited(await read(a, 99), "presence on A");
    await goodStillWorks("presence rate");
  });

  it("one address's stream opens are counted over every pod", async () => {
    const users = await Promise.all(
      Array.from({ length: PER_IP + 2 }, (_, i) => a.login(`Nat${i}`)),
    );
    const statuses = [];
    for (const [i, { token }] of users.entries()) {
      const reply = await openAndClose(i % 2 ? b : a, token, "nat", "127.0.0.22");
      statuses.push(reply.status === 200 ? "200" : reply.code);
    }
    assert.deepEqual(statuses, [
      ...Array(PER_IP).fill("200"),
      "RT_ERR_RATE_LIMITED",
      "RT_ERR_RATE_LIMITED",
    ]);
    await goodStillWorks("address rate");
  });

  it("the counters are Redis keys that expire with the window", async () => {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await client.scan(cursor, "MATCH", `${prefix}:rl:*`, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    assert.ok(
      keys.some((k) => k.includes("/api/events")),
      keys.join(" "),
    );
    assert.ok(
      keys.some((k) => k.includes("presence")),
      keys.join(" "),
    );
    assert.ok(
      keys.some((k) => k.includes("streams-ip:127.0.0.22")),
      keys.join(" "),
    );
    for (const key of keys) {
      const ttl = await client.pttl(key);
      assert.ok(ttl > 0 && ttl <= 60_000, `${key}: PTTL ${ttl}`);
    }
  });
});
