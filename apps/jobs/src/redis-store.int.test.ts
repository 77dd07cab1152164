/**
 * `RedisJobStore` and `RedisMediaStore` against redis-server processes this file starts
 * itself (never the shared 6379): the shared JobStore contract on a single Redis and on a
 * 3-master Cluster (a user's keys share a slot, so each transition stays one script), then the
 * key layout and expiry only the Redis store has.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createRedisClient } from "@realtime/redis";
import {
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";
import { Redis } from "ioredis";
import type { JobsRedisConfig } from "./config.ts";
import { jobKeys, jobsRedisTarget, RedisJobStore, RedisMediaStore } from "./redis-store.ts";
import { queuedRecord, runJobStoreContract } from "./testing/job-store-contract.ts";

const TTL_SECONDS = 600;
/** A unique key prefix per case, so no two cases share a key. */
const uniquePrefix = () => `t_${randomBytes(4).toString("hex")}`;

function redisConfig(target: Pick<JobsRedisConfig, "mode" | "url" | "clusterNodes">) {
  return { ...target, prefix: uniquePrefix(), waitReplicas: 0, waitTimeoutMs: 500 };
}

/** Two parties (say a pod and a worker), each with its own connection, on one prefix. */
function pair(config: JobsRedisConfig) {
  const connA = createRedisClient(jobsRedisTarget(config), { role: "jobs", name: "job-store-a" });
  const connB = createRedisClient(jobsRedisTarget(config), { role: "jobs", name: "job-store-b" });
  return {
    a: new RedisJobStore(connA, config.prefix, TTL_SECONDS),
    b: new RedisJobStore(connB, config.prefix, TTL_SECONDS),
    teardown: async () => {
      connA.disconnect();
      connB.disconnect();
    },
  };
}

describe("RedisJobStore on a single Redis", () => {
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

  const single = () => redisConfig({ mode: "standalone", url: redis.url, clusterNodes: [] });

  runJobStoreContract("RedisJobStore (single Redis)", async () => pair(single()));

  it("keeps a user's keys under one hash tag, expiring ttlSeconds after the last change", async () => {
    const config = single();
    const conn = createRedisClient(jobsRedisTarget(config), {
      role: "jobs",
      name: "job-store-layout",
    });
    try {
      const store = new RedisJobStore(conn, config.prefix, TTL_SECONDS);
      const record = queuedRecord("u_layout");
      await store.create(record, 2);
      const keys = jobKeys(config.prefix, "u_layout", record.jobId);
      assert.equal(keys.record, `${config.prefix}:job:{u:u_layout}:${record.jobId}`);
      assert.equal(keys.active, `${config.prefix}:jobs-active:{u:u_layout}`);
      assert.deepEqual(await admin.smembers(keys.active), [record.jobId]);
      for (const key of [keys.record, keys.active]) {
        const ttl = await admin.ttl(key);
        assert.ok(ttl > 0 && ttl <= TTL_SECONDS, `${key} expires (ttl ${ttl})`);
      }
      await store.finish("u_layout", record.jobId, { status: "cancelled" });
      assert.deepEqual(await admin.smembers(keys.active), [], "a finished job leaves the set");
    } finally {
      conn.disconnect();
    }
  });

  it("media: the owner's bytes back, with the TTL; another user's lookup finds nothing", async () => {
    const config = single();
    const conn = createRedisClient(jobsRedisTarget(config), { role: "jobs", name: "media-store" });
    try {
      const media = new RedisMediaStore(conn, config.prefix, TTL_SECONDS);
      const { jobId } = queuedRecord("u_media");
      const bytes = new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0, 255]);
      await media.put("u_media", jobId, bytes);
      assert.deepEqual(await media.get("u_media", jobId), Buffer.from(bytes));
      assert.equal(await media.get("u_other", jobId), null);
      const ttl = await admin.ttl(jobKeys(config.prefix, "u_media", jobId).media);
      assert.ok(ttl > 0 && ttl <= TTL_SECONDS);
      await media.delete("u_media", jobId);
      assert.equal(await media.get("u_media", jobId), null);
    } finally {
      conn.disconnect();
    }
  });
});

describe("RedisJobStore on a Redis Cluster", () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  runJobStoreContract("RedisJobStore (Redis Cluster)", async () =>
    pair(redisConfig({ mode: "cluster", url: null, clusterNodes: cluster.nodes })),
  );
});
