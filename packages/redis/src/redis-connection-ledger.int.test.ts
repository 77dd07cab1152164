/**
 * {@link RedisConnectionLedger} against redis-server processes this file starts itself: the
 * shared ConnectionLedger contract on a single Redis and on a 3-master Cluster, then what only
 * the Redis ledger does: one cap over every pod, and the count of a pod that stopped writing
 * (it died) expiring within the lease TTL.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { runConnectionLedgerContract, waitFor } from "@realtime/server/testing";
import {
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";
import { createRedisClient, type RedisClient, type RedisTarget } from "./redis-client.ts";
import { RedisConnectionLedger } from "./redis-connection-ledger.ts";

/**
 * Pods of one fixture share a fresh prefix; each has its own `limits` client, connected before
 * the test starts (that profile queues nothing: a command sent before the connection is up
 * would fail, and the ledger would admit on its local count without asking Redis). Any such
 * failure fails the test at teardown.
 */
async function fixture(target: RedisTarget, options: { pods?: number; leaseTtlMs?: number } = {}) {
  const prefix = `c_${randomBytes(4).toString("hex")}`;
  const clients: RedisClient[] = [];
  for (let i = 0; i < (options.pods ?? 1); i++) {
    clients.push(
      createRedisClient(target, {
        role: "limits",
        name: `ledger-test-${i}`,
        commandTimeoutMs: 1_000,
      }),
    );
  }
  await waitFor(() => clients.every((c) => c.status === "ready"), "clients connected");
  const warnings: string[] = [];
  let pods = 0;
  return {
    prefix,
    ledger(max: number) {
      const redis = clients[pods % clients.length] as RedisClient;
      return new RedisConnectionLedger({
        redis,
        max,
        leaseTtlMs: options.leaseTtlMs ?? 30_000,
        prefix,
        podId: `pod${pods++}`,
        log: { warn: (message) => warnings.push(message) },
      });
    },
    client: () => clients[0] as RedisClient,
    teardown: async () => {
      for (const client of clients) client.disconnect();
      assert.deepEqual(warnings, [], "every call reached Redis");
    },
  };
}

describe("RedisConnectionLedger on a single Redis", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  runConnectionLedgerContract("RedisConnectionLedger (single Redis)", async () =>
    fixture(redis.url),
  );

  it("counts one user's streams over every pod", async () => {
    const f = await fixture(redis.url, { pods: 2 });
    const [a, b] = [f.ledger(2), f.ledger(2)];
    try {
      const onA = await a.acquire("u");
      assert.equal(typeof onA, "function");
      assert.equal(typeof (await b.acquire("u")), "function");
      assert.equal(await b.acquire("u"), null, "the cap is over both pods");
      assert.equal(await a.acquire("u"), null);
      (onA as () => void)();
      // The release is written in the background; B is admitted once Redis holds it.
      await waitFor(async () => {
        const lease = await b.acquire("u");
        return lease !== null;
      }, "a slot freed on A is usable on B");
      assert.equal(b.count("u"), 2);
      assert.equal(a.count("u"), 0);
    } finally {
      a.close();
      b.close();
      await f.teardown();
    }
  });

  it("a pod that stops writing stops counting within the lease TTL", async () => {
    const ttl = 600;
    const f = await fixture(redis.url, { pods: 2, leaseTtlMs: ttl });
    const [dead, live] = [f.ledger(2), f.ledger(2)];
    try {
      for (let i = 0; i < 2; i++) assert.equal(typeof (await dead.acquire("u")), "function");
      assert.equal(await live.acquire("u"), null);
      dead.close(); // no release, no refresh: as if the pod was SIGKILLed
      const stoppedAt = Date.now();
      await waitFor(
        async () => (await live.acquire("u")) !== null,
        "the dead pod's count expires",
        {
          timeoutMs: ttl + 2_000,
          intervalMs: 50,
        },
      );
      const healedAfter = Date.now() - stoppedAt;
      assert.ok(healedAfter <= ttl + 1_000, `healed after ${healedAfter} ms`);
      // Bounded: one field per pod, and the key expires.
      const key = `${f.prefix}:conns:u`;
      const fields = await f.client().hgetall(key);
      assert.ok(Object.keys(fields).length <= 2, JSON.stringify(fields));
      const pttl = await f.client().pttl(key);
      assert.ok(pttl > 0 && pttl <= ttl, `PTTL ${pttl}`);
    } finally {
      live.close();
      await f.teardown();
    }
  });
});

describe("RedisConnectionLedger on a Redis Cluster", () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(() => cluster?.stop());

  runConnectionLedgerContract("RedisConnectionLedger (3-master Cluster)", async () =>
    fixture({ nodes: cluster.nodes }),
  );
});
