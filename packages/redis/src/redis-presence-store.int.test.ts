/** RedisPresenceStore against the shared PresenceStore contract, on a single Redis and a Cluster. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { CONTRACT_TIMINGS, runPresenceContract, waitFor } from "@realtime/server/testing";
import {
  redisCli,
  replicate,
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";
import { channelPresenceKeys } from "./presence-keys.ts";
import { presenceScripts } from "./presence-script.ts";
import { RedisPresenceStore } from "./redis-presence-store.ts";
import { ReplicationTimeout } from "./replication.ts";

const prefix = () => `p_${randomBytes(4).toString("hex")}`;

/** Pods of one test share a prefix; each test gets a fresh one. */
function fixture(
  connection: Pick<
    ConstructorParameters<typeof RedisPresenceStore>[0] & {},
    "url" | "clusterNodes"
  >,
) {
  const shared = prefix();
  const stores: RedisPresenceStore[] = [];
  return {
    pod() {
      const store = new RedisPresenceStore({ ...connection, prefix: shared, ...CONTRACT_TIMINGS });
      stores.push(store);
      return store;
    },
    teardown: async () => {
      await Promise.all(stores.map((s) => s.close()));
    },
  };
}

describe("RedisPresenceStore on a single Redis", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());
  runPresenceContract("RedisPresenceStore (single Redis)", async () => fixture({ url: redis.url }));
});

describe("RedisPresenceStore on a Redis Cluster", () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(() => cluster?.stop());
  runPresenceContract("RedisPresenceStore (3-master Cluster)", async () =>
    fixture({ clusterNodes: cluster.nodes }),
  );
});

/** Forwards to Redis; can swallow Redis's replies and cut every client connection. */
async function replyEatingProxy(targetPort: number) {
  const sockets = new Set<Socket>();
  let eatReplies = false;
  const server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => eatReplies || client.write(chunk));
    for (const socket of [client, upstream]) {
      socket.on("error", () => {});
      socket.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    eatReplies(on: boolean) {
      eatReplies = on;
    },
    cutAll() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Resolves once `store` answers again (after its connection was cut). */
async function answering(store: RedisPresenceStore, channel: ChannelName): Promise<void> {
  await waitFor(
    () =>
      store.snapshot(channel).then(
        () => true,
        () => false,
      ),
    "the store answers again",
    { timeoutMs: 10_000 },
  );
}

/**
 * A heartbeat at `now` that Redis runs (`ran` turns true) but whose answer never reaches the
 * store; then the store's connection is cut and made again.
 */
async function beatUnanswered(
  proxy: Awaited<ReturnType<typeof replyEatingProxy>>,
  store: RedisPresenceStore,
  now: number,
  channel: ChannelName,
  check: { readonly ran: () => Promise<boolean>; readonly what: string },
): Promise<void> {
  proxy.eatReplies(true);
  const unanswered = assert.rejects(store.heartbeat(now), "its answer never came");
  await waitFor(check.ran, check.what);
  await unanswered;
  proxy.cutAll();
  proxy.eatReplies(false);
  await answering(store, channel);
}

describe("RedisPresenceStore: faults and leftovers", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());
  const x = "channel:faults" as ChannelName;
  const T0 = 1_800_000_000_000;

  it("a transition decided by Redis whose reply was lost is still reported (retry = replay)", async () => {
    const proxy = await replyEatingProxy(redis.port);
    const shared = prefix();
    const store = new RedisPresenceStore({ url: proxy.url, prefix: shared, commandTimeoutMs: 500 });
    try {
      await store.heartbeat(T0);
      // Someone else holds the channel already, so the next join's only write is the script.
      await store.apply(
        [{ kind: "join", channel: x, streamId: "0", userId: "u0", userName: "Bo" }],
        T0,
      );
      proxy.eatReplies(true);
      const applying = store.apply(
        [{ kind: "join", channel: x, streamId: "1", userId: "u1", userName: "Ada" }],
        T0,
      );
      const podKey = channelPresenceKeys(shared, x).pod(store.podId);
      await waitFor(
        async () => (await redisCli(redis.port, "HEXISTS", podKey, "1")) === "1",
        "applied in Redis",
      );
      proxy.cutAll();
      proxy.eatReplies(false);
      const result = await applying;
      assert.deepEqual(
        result.transitions.map(({ version: _, ...t }) => t),
        [{ channel: x, userId: "u1", userName: "Ada", status: "online" }],
      );
      assert.equal(result.transitions[0]?.version, (await store.snapshot(x)).version, "once");
      // And the same for the offline of a settled grace period.
      const left = await store.apply([{ kind: "leave", channel: x, streamId: "1" }], T0 + 1);
      // Load the script first: a NOSCRIPT reply must not be the one that gets lost.
      await store.settle([{ channel: x, userId: "nobody", token: "none", deadline: 0 }]);
      proxy.eatReplies(true);
      const settling = store.settle(left.graces);
      const graceKey = channelPresenceKeys(shared, x).grace;
      await waitFor(
        async () => (await redisCli(redis.port, "EXISTS", graceKey)) === "0",
        "settled in Redis",
      );
      proxy.cutAll();
      proxy.eatReplies(false);
      assert.deepEqual(
        (await settling).map((t) => t.status),
        ["offline"],
      );
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it("versions keep growing when Redis lost the counter's last writes (a failover)", async () => {
    const shared = prefix();
    const store = new RedisPresenceStore({ url: redis.url, prefix: shared });
    const y = "channel:versions" as ChannelName;
    try {
      await store.heartbeat(T0);
      const join = (s: string) =>
        ({ kind: "join", channel: y, streamId: s, userId: `u${s}`, userName: s }) as const;
      const first = (await store.apply([join("1"), join("2"), join("3")], T0)).transitions;
      const last = Math.max(...first.map((t) => t.version));
      // The replica that took over had the counter three transitions back.
      const key = channelPresenceKeys(shared, y).version;
      await redisCli(redis.port, "SET", key, String(last - 3));
      const [next] = (await store.apply([join("4")], T0)).transitions;
      assert.ok(next && next.version > last, `${next?.version} > ${last}`);
    } finally {
      await store.close();
    }
  });

  it("leaves nothing behind once everyone left and every grace period ended", async () => {
    const shared = prefix();
    const [a, b] = [0, 1].map(() => new RedisPresenceStore({ url: redis.url, prefix: shared }));
    try {
      for (const pod of [a, b]) await pod?.heartbeat(T0);
      const joins = ["1", "2", "3"].map(
        (s) => ({ kind: "join", channel: x, streamId: s, userId: `u${s}`, userName: s }) as const,
      );
      await a?.apply(joins, T0);
      await b?.apply(joins, T0);
      const leaves = joins.map(
        (j) => ({ kind: "leave", channel: x, streamId: j.streamId }) as const,
      );
      const graces = [
        ...((await a?.apply(leaves, T0 + 1))?.graces ?? []),
        ...((await b?.apply(leaves, T0 + 1))?.graces ?? []),
      ];
      assert.equal(graces.length, 3);
      await b?.settle(graces.filter((g) => g.token.startsWith(`${b?.podId}.`)));
      await a?.settle(graces.filter((g) => g.token.startsWith(`${a?.podId}.`)));
      for (const pod of [a, b]) await pod?.heartbeat(T0 + 2); // drops the channel from the index
      const keys = (await redisCli(redis.port, "--scan", "--pattern", `${shared}:*`))
        .split("\n")
        .filter(Boolean);
      const version = channelPresenceKeys(shared, x).version;
      assert.deepEqual(keys.filter((k) => !k.includes(":presence-reply:")).sort(), [
        version,
        `${shared}:{presence}:lives`,
        `${shared}:{presence}:pods`,
      ]);
      // The version counter stays as long as an unused channel's epoch (10 minutes), so a
      // channel that comes back soon continues above it — and no longer: a stream open must
      // not leave a key for a day in every room it names.
      const ttl = Number(await redisCli(redis.port, "PTTL", version));
      assert.ok(ttl > 590_000 && ttl <= 600_000, `version counter TTL ${ttl} ms`);
    } finally {
      await Promise.all([a?.close(), b?.close()]);
    }
  });

  it("a connection closed after Redis's last save does not come back with its RDB", async () => {
    const shared = prefix();
    const store = new RedisPresenceStore({ url: redis.url, prefix: shared, commandTimeoutMs: 500 });
    const join = (streamId: string, userId: string) =>
      ({ kind: "join", channel: x, streamId, userId, userName: userId }) as const;
    try {
      assert.deepEqual(await store.heartbeat(T0), { lost: false });
      await store.apply([join("1", "u1"), join("2", "u2")], T0);
      await redisCli(redis.port, "SAVE");
      const left = await store.apply([{ kind: "leave", channel: x, streamId: "2" }], T0 + 1);
      await store.settle(left.graces);
      assert.deepEqual(
        (await store.snapshot(x)).users.map((u) => u.userId),
        ["u1"],
        "u2 left",
      );

      await redis.restart();
      assert.deepEqual(
        (await store.snapshot(x)).users.map((u) => u.userId).sort(),
        ["u1", "u2"],
        "the RDB brought u2's closed connection back",
      );
      const beat = await store.heartbeat(T0 + 2);
      assert.equal(beat.lost, true, "the pod is told to join its connections again");
      const graces = beat.reaped?.graces ?? [];
      assert.deepEqual(graces.map((g) => g.userId).sort(), ["u1", "u2"], "its entries reaped");
      // The caller joins what is still open here (u1), then settles the grace periods.
      await store.apply([join("1", "u1")], T0 + 3);
      const settled = await store.settle(graces);
      assert.deepEqual(
        settled.map((t) => [t.userId, t.status]),
        [["u2", "offline"]],
        "u2 goes offline; u1, still connected, reports nothing",
      );
      assert.deepEqual(
        (await store.snapshot(x)).users.map((u) => u.userId),
        ["u1"],
      );
      assert.deepEqual(await store.heartbeat(T0 + 4), { lost: false }, "once");
    } finally {
      await store.close();
    }
  });

  it("a heartbeat that met Redis back from its RDB but lost its answer: the next one reaps", async () => {
    // Found by `npm run chaos` (seed 1305): Redis came back from an RDB listing a closed
    // connection, then froze; the beat it ran on waking recorded the new life and its answer
    // timed out, so the next beat heard of nothing and the connection stayed listed for good.
    const proxy = await replyEatingProxy(redis.port);
    const shared = prefix();
    const store = new RedisPresenceStore({ url: proxy.url, prefix: shared, commandTimeoutMs: 500 });
    const z = "channel:answer-lost" as ChannelName;
    const join = (streamId: string, userId: string) =>
      ({ kind: "join", channel: z, streamId, userId, userName: userId }) as const;
    try {
      await store.heartbeat(T0);
      await store.apply([join("1", "u1"), join("2", "u2")], T0);
      await redisCli(redis.port, "SAVE");
      const left = await store.apply([{ kind: "leave", channel: z, streamId: "2" }], T0 + 1);
      await store.settle(left.graces);
      await redis.restart(); // from the RDB: u2's closed connection is back
      await answering(store, z);
      // Loaded now, so the answer that gets lost is not a NOSCRIPT.
      await redisCli(redis.port, "SCRIPT", "LOAD", presenceScripts().heartbeat.source);

      const life = /master_replid:(\w+)/.exec(await redisCli(redis.port, "INFO", "replication"));
      const lives = `${shared}:{presence}:lives`;
      await beatUnanswered(proxy, store, T0 + 2, z, {
        ran: async () => (await redisCli(redis.port, "HGET", lives, store.podId)) === life?.[1],
        what: "the beat ran in Redis and recorded the new life",
      });

      const beat = await store.heartbeat(T0 + 3);
      assert.equal(beat.lost, true, "the next beat still hears of it");
      assert.deepEqual(
        (beat.reaped?.graces ?? []).map((g) => g.userId).sort(),
        ["u1", "u2"],
        "and the entries the RDB brought back are reaped",
      );
      await store.apply([join("1", "u1")], T0 + 4);
      await store.settle(beat.reaped?.graces ?? []);
      assert.deepEqual(
        (await store.snapshot(z)).users.map((u) => u.userId),
        ["u1"],
      );
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  it("a pod reaped while its beats went unanswered is told at the next answered one", async () => {
    const proxy = await replyEatingProxy(redis.port);
    const shared = prefix();
    const options = { prefix: shared, commandTimeoutMs: 500, ttlMs: 10_000 };
    const store = new RedisPresenceStore({ url: proxy.url, ...options });
    const reaper = new RedisPresenceStore({ url: redis.url, ...options });
    const z = "channel:reaped-unanswered" as ChannelName;
    try {
      await store.heartbeat(T0);
      await store.apply(
        [{ kind: "join", channel: z, streamId: "1", userId: "u1", userName: "u1" }],
        T0,
      );
      await reaper.heartbeat(T0 + 11_000);
      const reaped = await reaper.reap(T0 + 11_000);
      assert.deepEqual(
        reaped.transitions.map((t) => [t.userId, t.status]),
        [["u1", "offline"]],
        "silent past its TTL: reaped",
      );
      // This beat registers the pod again in Redis — and its answer, which said so, is lost.
      const pods = `${shared}:{presence}:pods`;
      await beatUnanswered(proxy, store, T0 + 11_500, z, {
        ran: async () =>
          (await redisCli(redis.port, "ZSCORE", pods, store.podId)) === String(T0 + 11_500),
        what: "registered again in Redis",
      });
      const beat = await store.heartbeat(T0 + 12_000);
      assert.equal(beat.lost, true, "told to join its connections again");
    } finally {
      await Promise.all([store.close(), reaper.close()]);
      await proxy.close();
    }
  });

  it("after Redis came back empty, a join registers its channel again before it is written", async () => {
    // Found by `npm run chaos` (seeds 1018, 1020): a pod that joined streams right after Redis
    // restarted empty, and stopped before its next heartbeat, left entries in no index and
    // itself in no registry: no reaper could find them, the rooms listed them for good.
    const shared = prefix();
    const store = new RedisPresenceStore({ url: redis.url, prefix: shared, commandTimeoutMs: 500 });
    const y = "channel:registered-again" as ChannelName;
    const join = (streamId: string, userId: string) =>
      ({ kind: "join", channel: y, streamId, userId, userName: userId }) as const;
    try {
      await store.heartbeat(T0);
      await store.apply([join("1", "u1")], T0);
      await redis.restart(); // empty
      await store.apply([join("2", "u2")], T0 + 1);
      const index = `${shared}:{presence}:index:${store.podId}`;
      assert.equal(await redisCli(redis.port, "SISMEMBER", index, y), "1", "in the index");
      const score = await redisCli(redis.port, "ZSCORE", `${shared}:{presence}:pods`, store.podId);
      assert.notEqual(score, "", "and the pod in the registry, so a reaper would find it");
    } finally {
      await store.close();
    }
  });

  it("an RDB taken between a restart and the pod's next heartbeat: what it brings back is reaped", async () => {
    const shared = prefix();
    const store = new RedisPresenceStore({ url: redis.url, prefix: shared, commandTimeoutMs: 500 });
    const y = "channel:unindexed" as ChannelName;
    const join = (streamId: string, userId: string) =>
      ({ kind: "join", channel: y, streamId, userId, userName: userId }) as const;
    try {
      await store.heartbeat(T0);
      await store.apply([join("1", "u1")], T0);
      await redis.restart(); // empty: the pod does not know yet
      await store.apply([join("2", "u2")], T0 + 1);
      await redisCli(redis.port, "SAVE");
      const left = await store.apply([{ kind: "leave", channel: y, streamId: "2" }], T0 + 2);
      await store.settle(left.graces);
      await redis.restart(); // from the RDB: u2's closed connection is back, in no index
      assert.deepEqual(
        (await store.snapshot(y)).users.map((u) => u.userId),
        ["u2"],
      );

      const beat = await store.heartbeat(T0 + 3);
      assert.equal(beat.lost, true);
      const graces = beat.reaped?.graces ?? [];
      assert.deepEqual(
        graces.map((g) => g.userId),
        ["u2"],
        "found by its key, reaped",
      );
      const settled = await store.settle(graces);
      assert.deepEqual(
        settled.map((t) => [t.userId, t.status]),
        [["u2", "offline"]],
      );
      assert.deepEqual((await store.snapshot(y)).users, []);
    } finally {
      await store.close();
    }
  });
});

describe("RedisPresenceStore with waitReplicas", () => {
  const T0 = 1_800_000_000_000;
  const x = "channel:replicated-presence" as ChannelName;
  const started: TestRedis[] = [];
  after(async () => {
    await Promise.all(started.map((r) => r.stop()));
  });

  it("a change no replica holds is tried again until one does; an unanswered beat rejoins", async () => {
    const [master, first] = await Promise.all([startRedis(), startRedis()]);
    started.push(master, first);
    await replicate(first, master);
    const store = new RedisPresenceStore({
      url: master.url,
      prefix: prefix(),
      commandTimeoutMs: 5_000,
      waitReplicas: 1,
      waitTimeoutMs: 1_500,
    });
    const join = (streamId: string, userId: string) =>
      ({ kind: "join", channel: x, streamId, userId, userName: userId }) as const;
    try {
      await store.heartbeat(T0);
      await store.apply([join("1", "u1")], T0);

      await first.kill();
      await assert.rejects(store.heartbeat(T0 + 1), (error) => error instanceof ReplicationTimeout);
      let reported = false;
      const applying = store.apply([join("2", "u2")], T0 + 2).then((result) => {
        reported = true;
        return result;
      });
      await waitFor(
        async () => (await store.snapshot(x)).users.some((u) => u.userId === "u2"),
        "the master took the join",
      );
      assert.equal(reported, false, "not reported while no replica holds it");

      const second = await startRedis();
      started.push(second);
      await replicate(second, master);
      const result = await applying;
      assert.deepEqual(
        result.transitions.map((t) => [t.userId, t.status]),
        [["u2", "online"]],
        "reported once a replica holds it, once",
      );
      const beat = await store.heartbeat(T0 + 3);
      assert.equal(beat.lost, true, "the unanswered heartbeat: join this pod's connections again");
    } finally {
      await store.close();
    }
  });
});
