/** RedisBroker as a HistoryStore, on a single Redis (with a restart that loses everything) and a Cluster. */
import { randomBytes } from "node:crypto";
import { after, before, describe } from "node:test";
import { runHistoryContract } from "@realtime/server/testing";
import {
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";
import { RedisBroker } from "./redis-broker.ts";

const SIZE = 20;
const prefix = () => `h_${randomBytes(4).toString("hex")}`;

describe("RedisBroker history on a single Redis", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());
  runHistoryContract(
    "RedisBroker (single Redis)",
    async () => {
      const store = new RedisBroker({ url: redis.url, prefix: prefix(), historySize: SIZE });
      await store.waitUntilReady();
      return {
        store,
        size: SIZE,
        teardown: () => store.close(),
        wipe: async () => {
          await redis.restart();
          await store.waitUntilReady(15_000);
        },
      };
    },
    { canWipe: true },
  );
});

describe("RedisBroker history on a Redis Cluster", () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(() => cluster?.stop());
  runHistoryContract("RedisBroker (Cluster)", async () => {
    const store = new RedisBroker({
      clusterNodes: cluster.nodes,
      prefix: prefix(),
      historySize: SIZE,
    });
    await store.waitUntilReady();
    return { store, size: SIZE, teardown: () => store.close() };
  });
});
