/**
 * RedisBroker against real redis-server processes this file starts itself (never the shared
 * 6379): the shared broker contract on a single Redis and on a 3-master cluster, then the
 * failure cases of a single Redis. Cluster-only cases live in `redis-broker-cluster.int.test.ts`.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { collect, runBrokerContract, waitFor } from "@realtime/server/testing";
import {
  redisCli,
  replicate,
  startRedis,
  startRedisCluster,
  TcpProxy,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";
import { Redis } from "ioredis";
import { ClusterAdmin } from "./cluster-admin.ts";
import { RedisBroker, type RedisBrokerOptions } from "./redis-broker.ts";
import { channelKeys, idempotencyKey } from "./redis-keys.ts";
import { ReplicationTimeout } from "./replication.ts";

/** The contract's idle TTL (meta hash TTL), in seconds: short, so it can watch channels go. */
const IDLE_TTL_S = 2;

/** A unique key prefix per test, so no two tests share a key. */
const uniquePrefix = () => `t_${randomBytes(4).toString("hex")}`;

/** Two pods on one backend, ready, with a shared unique prefix. */
async function pods(options: RedisBrokerOptions) {
  const prefix = options.prefix ?? uniquePrefix();
  const a = new RedisBroker({ prefix, ...options });
  const b = new RedisBroker({ prefix, ...options });
  await Promise.all([a.waitUntilReady(), b.waitUntilReady()]);
  const teardown = async () => {
    await Promise.all([a.close(), b.close()]);
  };
  return { a, b, prefix, teardown };
}

describe("RedisBroker on a single Redis", () => {
  let redis: TestRedis;
  let admin: Redis;
  before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url);
  });
  after(async () => {
    admin?.disconnect();
    await redis?.stop();
  });

  const numsub = async (prefix: string, channel: ChannelName) => {
    const reply = await admin.call("PUBSUB", "NUMSUB", channelKeys(prefix, channel).pubsub);
    return Array.isArray(reply) ? Number(reply[1]) : Number.NaN;
  };

  runBrokerContract("RedisBroker (single Redis)", async () => {
    const pair = await pods({ url: redis.url, metaTtlSeconds: IDLE_TTL_S });
    return {
      ...pair,
      subscriberCount: (channel) => numsub(pair.prefix, channel),
      idleTtlMs: IDLE_TTL_S * 1000,
      holds: async (channel) => (await admin.exists(channelKeys(pair.prefix, channel).meta)) === 1,
    };
  });

  it("keeps the layout: meta hash, stream ids <offset>-0, PUBSUB NUMSUB 0/1", async () => {
    const { a, b, prefix, teardown } = await pods({ url: redis.url });
    try {
      const x: ChannelName = "channel:layout";
      const keys = channelKeys(prefix, x);
      assert.equal(keys.pubsub, `${prefix}:{channel:layout}`);
      assert.equal(await numsub(prefix, x), 0, "no pod subscribes yet");
      await b.subscribe(x);
      assert.equal(await numsub(prefix, x), 1, "one pod subscribes");
      assert.deepEqual(b.subscribedChannels(), [x]);
      assert.deepEqual(a.subscribedChannels(), []);
      const live = collect(b);
      const first = await a.publish(x, '{"n":1}');
      await a.publish(x, '{"n":2}');
      const replid = /master_replid:(\w+)/.exec(await admin.info("replication"))?.[1];
      assert.deepEqual(await admin.hgetall(keys.meta), {
        epoch: first.epoch,
        offset: "2",
        life: replid,
      });
      const entries = await admin.xrange(keys.history, "-", "+");
      const life = replid?.slice(0, 8) ?? "";
      assert.deepEqual(entries, [
        ["1-0", ["d", '{"n":1}', "l", life]],
        ["2-0", ["d", '{"n":2}', "l", life]],
      ]);
      const history = await b.read(x, 0, 10);
      assert.deepEqual(
        history.messages.map((m) => [m.offset, m.life]),
        [
          [1, life],
          [2, life],
        ],
        "history answers with the life that wrote each entry",
      );
      assert.deepEqual(history.lives, [life], "and whose history it is (it took over from none)");
      await waitFor(() => live.length === 2, "both live");
      assert.deepEqual(
        live.map((m) => [m.offset, m.life]),
        [
          [1, life],
          [2, life],
        ],
        "so does the live path",
      );
      assert.ok((await admin.ttl(keys.history)) > 0, "history expires");
      assert.ok((await admin.ttl(keys.meta)) > 0, "meta expires");
      await b.unsubscribe(x);
      assert.equal(await numsub(prefix, x), 0, "unsubscribed");
      assert.deepEqual(b.subscribedChannels(), []);
    } finally {
      await teardown();
    }
  });

  it("rebases a channel that went back below a position a pod saw: new epoch, once", async () => {
    const prefix = uniquePrefix();
    const broker = new RedisBroker({ url: redis.url, prefix });
    try {
      const x: ChannelName = "channel:went_back";
      const keys = channelKeys(prefix, x);
      let seen = { epoch: "", offset: 0 };
      for (let i = 1; i <= 5; i++) {
        const { epoch, offset } = await broker.publish(x, `{"n":${i}}`);
        seen = { epoch, offset };
      }
      assert.deepEqual(await broker.rebase(x, seen), seen, "not below: nothing to do");
      // Redis loses the last two (an older snapshot, a promoted replica behind its master).
      await admin.hset(keys.meta, "offset", 3);
      await admin.xdel(keys.history, "4-0", "5-0");
      const rebased = await broker.rebase(x, seen);
      assert.notEqual(rebased.epoch, seen.epoch, "a new epoch");
      assert.equal(rebased.offset, 0);
      assert.equal(await admin.exists(keys.history), 0, "the old epoch's history is gone");
      assert.deepEqual(await broker.rebase(x, seen), rebased, "a second pod's rebase is a no-op");
      assert.deepEqual(await broker.publish(x, "{}"), {
        epoch: rebased.epoch,
        offset: 1,
        duplicate: false,
      });
    } finally {
      await broker.close();
    }
  });

  it("a conflict rebase: a new epoch even when the channel was published past the position seen", async () => {
    const prefix = uniquePrefix();
    const broker = new RedisBroker({ url: redis.url, prefix });
    try {
      const x: ChannelName = "channel:went_back_and_past";
      let seen = { epoch: "", offset: 0 };
      for (let i = 1; i <= 5; i++) {
        const { epoch, offset } = await broker.publish(x, `{"n":${i}}`);
        seen = { epoch, offset };
      }
      // Redis lost 4 and 5, then took three new events: offset 6, past what the pod saw.
      const keys = channelKeys(prefix, x);
      await admin.hset(keys.meta, "offset", 3);
      await admin.xdel(keys.history, "4-0", "5-0");
      await admin.call("XSETID", keys.history, "3-0");
      for (let i = 0; i < 3; i++) await broker.publish(x, `{"again":${i}}`);
      const top = await broker.position(x);
      assert.deepEqual(top, { epoch: seen.epoch, offset: 6 });
      assert.deepEqual(await broker.rebase(x, seen), top, "counts alone cannot see it");
      const rebased = await broker.rebase(x, seen, { conflict: true });
      assert.notEqual(rebased.epoch, seen.epoch, "a new epoch");
      assert.equal(rebased.offset, 0);
      assert.deepEqual(
        await broker.rebase(x, seen, { conflict: true }),
        rebased,
        "once: the channel left the epoch seen",
      );
    } finally {
      await broker.close();
    }
  });

  it("remembers an idempotent publish in <prefix>:idem:{channel}:<key> with its window", async () => {
    const { a, b, prefix, teardown } = await pods({ url: redis.url });
    try {
      const x: ChannelName = "channel:idem_layout";
      const window = 60_000;
      const first = await a.publish(x, '{"n":1}', {
        idempotencyKey: "order-7",
        idempotencyWindowMs: window,
      });
      const key = idempotencyKey(prefix, x, "order-7");
      assert.equal(key, `${prefix}:idem:{channel:idem_layout}:order-7`);
      assert.equal(
        await admin.get(key),
        `1:${first.epoch}:`,
        "offset:epoch:fingerprint (none given)",
      );
      const ttl = await admin.pttl(key);
      assert.ok(ttl > window - 5_000 && ttl <= window, `PX of the window: ${ttl}`);
      // A replay neither publishes nor extends the window.
      assert.equal((await b.publish(x, "{}", { idempotencyKey: "order-7" })).duplicate, true);
      assert.ok((await admin.pttl(key)) <= ttl, "the window is not extended");
      assert.equal(await admin.xlen(channelKeys(prefix, x).history), 1);
      // A publish without a key leaves no idempotency key behind.
      await a.publish(x, "{}");
      assert.deepEqual(await admin.keys(`${prefix}:idem:*`), [key]);
    } finally {
      await teardown();
    }
  });

  it("answers a replay with the old position after the channel lost its epoch", async () => {
    const { a, b, prefix, teardown } = await pods({ url: redis.url });
    try {
      const x: ChannelName = "channel:idem_epoch";
      const first = await a.publish(x, "{}", { idempotencyKey: "k" });
      // The channel's meta and history are lost (evicted, restored without them): new epoch.
      const keys = channelKeys(prefix, x);
      await admin.del(keys.meta, keys.history);
      const fresh = await b.publish(x, "{}");
      assert.notEqual(fresh.epoch, first.epoch);
      assert.equal(fresh.offset, 1);
      // The caller learns that its publish was accepted, in the epoch it was accepted in.
      assert.deepEqual(await b.publish(x, "{}", { idempotencyKey: "k" }), {
        epoch: first.epoch,
        offset: 1,
        duplicate: true,
      });
      assert.deepEqual(await a.position(x), { epoch: fresh.epoch, offset: 1 }, "nothing published");
    } finally {
      await teardown();
    }
  });

  it("an idempotent publish survives a script cache flush (NOSCRIPT fallback) once", async () => {
    const { a, b, prefix, teardown } = await pods({ url: redis.url });
    try {
      const x: ChannelName = "channel:idem_noscript";
      const received = collect(b);
      await b.subscribe(x);
      await a.publish(x, "{}");
      await admin.call("SCRIPT", "FLUSH");
      const [one, two] = await Promise.all([
        a.publish(x, '{"n":1}', { idempotencyKey: "k" }),
        b.publish(x, '{"n":1}', { idempotencyKey: "k" }),
      ]);
      assert.deepEqual(
        [one?.duplicate, two?.duplicate].sort(),
        [false, true],
        "exactly one of the two published",
      );
      assert.equal(one?.offset, 2);
      assert.equal(two?.offset, 2);
      await waitFor(() => received.length >= 2, "both events delivered");
      assert.equal(await admin.xlen(channelKeys(prefix, x).history), 2);
    } finally {
      await teardown();
    }
  });

  it("trims the history to about historySize, newest entry kept", async () => {
    const prefix = uniquePrefix();
    const broker = new RedisBroker({ url: redis.url, prefix, historySize: 10 });
    try {
      const x: ChannelName = "channel:trimmed";
      for (let i = 0; i < 300; i++) await broker.publish(x, "{}");
      const key = channelKeys(prefix, x).history;
      const length = await admin.xlen(key);
      assert.ok(length >= 10 && length < 300, `trimmed to ${length}`);
      const [last] = await admin.xrevrange(key, "+", "-", "COUNT", 1);
      assert.equal(last?.[0], "300-0");
    } finally {
      await broker.close();
    }
  });

  it("recovers by itself after CLIENT KILL TYPE pubsub, and says so", async () => {
    const { a, b, prefix, teardown } = await pods({ url: redis.url });
    try {
      const x: ChannelName = "channel:killed";
      const received = collect(b);
      const resubscribed: ChannelName[][] = [];
      b.onResubscribed((channels) => resubscribed.push(channels));
      await b.subscribe(x);
      await a.publish(x, "{}");
      await waitFor(() => received.length === 1, "delivered before the kill");

      const killed = await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
      assert.ok(Number(killed) >= 2, "both pods' subscriber connections were killed");
      await waitFor(() => !b.ready(), "b reports not ready", { intervalMs: 1 });
      await waitFor(() => b.ready() && a.ready(), "both pods ready again");
      assert.deepEqual(resubscribed, [[x]], "onResubscribed fired once, with the channel");
      assert.equal(await numsub(prefix, x), 1, "subscribed again, exactly once");

      await a.publish(x, "{}");
      await waitFor(() => received.length === 2, "delivered after recovery");
      assert.deepEqual(
        received.map((m) => m.offset),
        [1, 2],
      );
    } finally {
      await teardown();
    }
  });
});

describe("RedisBroker behind a connection that stops carrying traffic", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it("notices through the liveness probe, replaces the connections and recovers", async () => {
    const proxy = await TcpProxy.start(redis.port);
    const prefix = uniquePrefix();
    const publisher = new RedisBroker({ url: redis.url, prefix });
    const b = new RedisBroker({
      url: proxy.url,
      prefix,
      probeIntervalMs: 100,
      probeTimeoutMs: 300,
      subscribeTimeoutMs: 500,
      commandTimeoutMs: 500,
    });
    try {
      await Promise.all([publisher.waitUntilReady(), b.waitUntilReady()]);
      const x: ChannelName = "channel:zombie";
      const received = collect(b);
      const resubscribed: ChannelName[][] = [];
      b.onResubscribed((channels) => resubscribed.push(channels));
      await b.subscribe(x);
      await publisher.publish(x, "{}");
      await waitFor(() => received.length === 1, "delivered before the partition");

      proxy.blackhole(); // the sockets stay open: nothing but the probe can tell
      await waitFor(() => !b.ready(), "the probe noticed");
      await waitFor(() => b.ready(), "replaced and ready again", { timeoutMs: 15_000 });
      assert.deepEqual(resubscribed.at(-1), [x]);
      await publisher.publish(x, "{}");
      await waitFor(() => received.length === 2, "delivered on the new connection");
      assert.deepEqual(
        received.map((m) => m.offset),
        [1, 2],
      );
    } finally {
      await Promise.all([publisher.close(), b.close()]);
      await proxy.close();
    }
  });

  it("becomes ready when its connections went silent in the middle of their handshake", async () => {
    // Found by `npm run chaos` (seed 5022): a pod started while Redis was frozen, and its link
    // went silent before Redis woke. The subscriber connection (no command timeout) waited for
    // the handshake's answer for good, and the pod never became ready.
    const proxy = await TcpProxy.start(redis.port);
    const info = await redisCli(redis.port, "INFO", "server");
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    process.kill(pid, "SIGSTOP");
    let b: RedisBroker | undefined;
    try {
      b = new RedisBroker({ url: proxy.url, prefix: uniquePrefix() });
      await waitFor(() => proxy.connections >= 2, "both connections open, Redis not answering");
      proxy.blackhole();
      process.kill(pid, "SIGCONT");
      await b.waitUntilReady(30_000);
      assert.equal(b.ready(), true);
    } finally {
      process.kill(pid, "SIGCONT");
      await b?.close();
      await proxy.close();
    }
  });
});

describe("RedisBroker when its Redis restarts empty", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it("is not ready while down, fails publishes fast, then recovers in a new epoch", async () => {
    const { a, b, teardown } = await pods({ url: redis.url, commandTimeoutMs: 1_000 });
    try {
      const x: ChannelName = "user:restarted";
      const received = collect(b);
      const resubscribed: ChannelName[][] = [];
      b.onResubscribed((channels) => resubscribed.push(channels));
      await b.subscribe(x);
      const before = await a.publish(x, "{}");
      await waitFor(() => received.length === 1, "delivered before the restart");

      await redis.kill();
      await waitFor(() => !a.ready() && !b.ready(), "not ready while Redis is down");
      const started = Date.now();
      await assert.rejects(a.publish(x, "{}"), /redis publish on user:restarted failed/);
      await assert.rejects(b.position(x));
      assert.ok(Date.now() - started < 5_000, "publish failed within seconds, did not hang");
      assert.equal(b.ready(), false);

      await redis.restart();
      await waitFor(() => a.ready() && b.ready(), "ready again", { timeoutMs: 15_000 });
      assert.deepEqual(resubscribed, [[x]]);
      const afterRestart = await a.publish(x, "{}");
      assert.equal(afterRestart.offset, 1, "the history is gone: positions start again");
      assert.notEqual(afterRestart.epoch, before.epoch, "a new epoch tells clients so");
      await waitFor(() => received.length === 2, "delivered after the restart");
      assert.deepEqual(received[1], {
        channel: x,
        epoch: afterRestart.epoch,
        offset: 1,
        life: received[1]?.life,
        data: "{}",
        publishedAt: received[1]?.publishedAt,
        requestId: undefined,
      });
      assert.notEqual(received[1]?.life, received[0]?.life, "another Redis life wrote it");
    } finally {
      await teardown();
    }
  });
});

describe("RedisBroker when its Redis comes back from its RDB, behind what it acknowledged", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it("starts a new epoch on the first touch, though no pod saw the lost tail", async () => {
    const { a, teardown } = await pods({ url: redis.url, commandTimeoutMs: 1_000 });
    try {
      const x: ChannelName = "channel:went-back";
      const idle: ChannelName = "channel:untouched";
      const saved = await a.publish(x, '{"n":1}');
      await a.publish(idle, "{}");
      await redisCli(redis.port, "SAVE");
      // Acknowledged after the snapshot, delivered by no pod (nobody subscribes): only Redis
      // knew of these, and it is about to forget them.
      await a.publish(x, '{"n":2}');
      const lostTop = await a.publish(x, '{"n":3}');
      assert.equal(lostTop.offset, 3);

      await redis.restart();
      await waitFor(() => a.ready(), "ready again", { timeoutMs: 15_000 });
      const after = await a.position(x);
      assert.notEqual(after.epoch, saved.epoch, "the channel left the epoch Redis went back in");
      assert.equal(after.offset, 0, "and starts it empty");
      const next = await a.publish(x, '{"n":4}');
      assert.deepEqual([next.epoch, next.offset], [after.epoch, 1], "once: the new epoch holds");
      assert.notEqual((await a.position(idle)).epoch, saved.epoch, "every channel of that life");
    } finally {
      await teardown();
    }
  });
});

describe("RedisBroker with waitReplicas: acknowledged only once a replica holds it", () => {
  let master: TestRedis;
  const replicas: TestRedis[] = [];
  const follow = (replica: TestRedis) => replicate(replica, master);
  before(async () => {
    master = await startRedis();
  });
  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await master?.stop();
  });

  it("rejects a publish no replica acknowledged in time; its retry with the key is answered once one does", async () => {
    const first = await startRedis();
    replicas.push(first);
    await follow(first);
    // A replica in sync acknowledges within milliseconds; the bound is for a busy machine.
    const { a, teardown } = await pods({
      url: master.url,
      waitReplicas: 1,
      waitTimeoutMs: 1_500,
      commandTimeoutMs: 5_000,
    });
    try {
      const x: ChannelName = "channel:replicated";
      const held = await a.publish(x, '{"n":1}');
      assert.equal(held.offset, 1, "a replica holds it: acknowledged");

      await first.kill();
      const key = { idempotencyKey: "k-2" };
      const refused = await a.publish(x, '{"n":2}', key).then(
        () => null,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof Error, "no replica: the publish rejects");
      assert.ok(refused.cause instanceof ReplicationTimeout, String(refused.cause));
      assert.match(refused.cause.message, /0 of 1 replica\(s\) within 1500 ms/);
      // The master took it: its outcome was unknown, not a failure — which is why the caller
      // retries with the same key.
      assert.equal((await a.position(x)).offset, 2);

      const second = await startRedis();
      replicas.push(second);
      await follow(second);
      const retried = await a.publish(x, '{"n":2}', key);
      assert.deepEqual(
        [retried.offset, retried.duplicate],
        [2, true],
        "the retry is answered with the first publish's position, now replicated",
      );
      assert.equal((await a.position(x)).offset, 2, "published once");
    } finally {
      await teardown();
    }
  });

  it("a promoted replica's history speaks for the life it took over from", async () => {
    // A master of its own: with the other tests' replica also following `master`, WAIT 1 could
    // be answered by that one while this replica had not the write yet (seen under
    // `npm run test:stress`: the promoted replica started a new epoch).
    const own = await startRedis();
    const replica = await startRedis();
    replicas.push(own, replica);
    await replicate(replica, own);
    const old = await pods({ url: own.url, waitReplicas: 1, waitTimeoutMs: 5_000 });
    const x: ChannelName = "channel:promoted";
    try {
      await old.a.publish(x, '{"n":1}');
    } finally {
      await old.teardown();
    }
    await redisCli(replica.port, "REPLICAOF", "NO", "ONE");
    const promoted = await pods({ url: replica.url, prefix: old.prefix });
    try {
      const mine = await promoted.a.publish(x, '{"n":2}');
      assert.equal(mine.offset, 2, "the promoted replica goes on");
      const page = await promoted.b.read(x, 0, 10);
      const [first, second] = page.messages.map((m) => m.life);
      assert.ok(first && second && first !== second, `two lives wrote: ${first}, ${second}`);
      assert.deepEqual(page.lives, [second, first], "its own life, then the one it took over from");
    } finally {
      await promoted.teardown();
    }
  });
});

describe("RedisBroker on a 3-master Redis Cluster", () => {
  let cluster: TestRedisCluster;
  let admin: ClusterAdmin;
  before(async () => {
    cluster = await startRedisCluster(3);
    admin = new ClusterAdmin(cluster.nodes);
  });
  after(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  runBrokerContract("RedisBroker (Redis Cluster, sharded pub/sub)", async () => {
    const pair = await pods({ clusterNodes: cluster.nodes, metaTtlSeconds: IDLE_TTL_S });
    return {
      ...pair,
      subscriberCount: (channel) => admin.shardNumSub(channelKeys(pair.prefix, channel).pubsub),
      idleTtlMs: IDLE_TTL_S * 1000,
      holds: async (channel) => {
        const meta = channelKeys(pair.prefix, channel).meta;
        return (await (await admin.owner(meta)).exists(meta)) === 1;
      },
    };
  });
});
