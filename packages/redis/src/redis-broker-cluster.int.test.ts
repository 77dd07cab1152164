/**
 * RedisBroker on a 3-master Redis Cluster this file starts itself: sharded pub/sub goes to
 * the slot owner, a channel's keys share one slot, and killed sharded subscriber connections
 * are replaced and resubscribed (ioredis 6 `shardedSubscribers`) with the broker noticing.
 * The shared contract on a cluster runs in `redis-broker.int.test.ts`.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { collect, waitFor } from "@realtime/server/testing";
import { startRedisCluster, type TestRedisCluster } from "@realtime/testkit/redis";
import { ClusterAdmin } from "./cluster-admin.ts";
import { RedisBroker } from "./redis-broker.ts";
import { channelKeys, keySlot } from "./redis-keys.ts";

/** Channels that land on different masters of a 3-master cluster, for most prefixes. */
const CHANNELS: ChannelName[] = Array.from({ length: 12 }, (_, i) => `channel:room_${i}` as const);

describe("RedisBroker on a Redis Cluster: sharded pub/sub", () => {
  let cluster: TestRedisCluster;
  let admin: ClusterAdmin;
  let a: RedisBroker;
  let b: RedisBroker;
  let prefix: string;
  before(async () => {
    cluster = await startRedisCluster(3);
    admin = new ClusterAdmin(cluster.nodes);
  });
  after(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  const startPods = async () => {
    prefix = `t_${randomBytes(4).toString("hex")}`;
    a = new RedisBroker({ clusterNodes: cluster.nodes, prefix });
    b = new RedisBroker({ clusterNodes: cluster.nodes, prefix });
    await Promise.all([a.waitUntilReady(), b.waitUntilReady()]);
  };
  const stopPods = async () => {
    await Promise.all([a?.close(), b?.close()]);
  };

  it("keeps every key of a channel in one slot, as Redis computes it", async () => {
    for (const channel of [...CHANNELS, "user:u_1" as const, "user:a.b~c@d-e" as const]) {
      const keys = channelKeys("realtime", channel);
      const slots = await Promise.all(
        [keys.pubsub, keys.meta, keys.history].map((key) => admin.keySlot(key)),
      );
      assert.equal(new Set(slots).size, 1, `one slot for ${channel}`);
      assert.equal(keySlot(keys.meta), slots[0], "our slot function agrees with Redis");
    }
    assert.equal(channelKeys("realtime", "user:u_1").pubsub, "realtime:{user:u_1}");
    assert.equal(channelKeys("realtime", "channel:general").pubsub, "realtime:{channel:general}");
  });

  it("stores a channel's meta and history on the master that owns its slot", async () => {
    await startPods();
    try {
      const x: ChannelName = "channel:placed";
      await a.publish(x, "{}");
      const keys = channelKeys(prefix, x);
      const owner = await admin.owner(keys.pubsub);
      assert.equal(await owner.exists(keys.meta, keys.history), 2);
      const replid = /master_replid:(\w+)/.exec(await owner.info("replication"))?.[1] ?? "";
      assert.deepEqual(await owner.xrange(keys.history, "-", "+"), [
        ["1-0", ["d", "{}", "l", replid.slice(0, 8)]],
      ]);
    } finally {
      await stopPods();
    }
  });

  it("SSUBSCRIBEs on the slot owner only: SHARDNUMSUB is 0 without a subscriber, 1 with", async () => {
    await startPods();
    try {
      const names = CHANNELS.map((c) => channelKeys(prefix, c).pubsub);
      const owners = new Set(await Promise.all(names.map((n) => admin.owner(n))));
      assert.equal(owners.size, 3, "the channels spread over all three masters");
      for (const name of names) assert.equal(await admin.shardNumSub(name), 0);
      await Promise.all(CHANNELS.map((c) => b.subscribe(c)));
      for (const name of names) {
        assert.equal(await admin.shardNumSub(name), 1, `${name} subscribed on its owner`);
        const everywhere = await admin.shardNumSubEverywhere(name);
        assert.equal(
          everywhere.reduce((s, n) => s + n, 0),
          1,
          "and nowhere else",
        );
      }
      await Promise.all(CHANNELS.map((c) => b.unsubscribe(c)));
      for (const name of names) assert.equal(await admin.shardNumSub(name), 0);
    } finally {
      await stopPods();
    }
  });

  it("recovers by itself when every sharded subscriber connection is killed", async () => {
    await startPods();
    try {
      const received = collect(b);
      const resubscribed: ChannelName[][] = [];
      b.onResubscribed((channels) => resubscribed.push(channels));
      await Promise.all(CHANNELS.map((c) => b.subscribe(c)));
      for (const c of CHANNELS) await a.publish(c, "{}");
      await waitFor(() => received.length === CHANNELS.length, "delivered before the kill");

      const killed = await admin.killPubSubClients();
      assert.ok(killed >= 6, `both pods' subscriber connections on 3 masters (${killed})`);
      await waitFor(() => !b.ready(), "b reports not ready", { intervalMs: 1 });
      await waitFor(() => a.ready() && b.ready(), "both ready again", { timeoutMs: 15_000 });
      assert.ok(resubscribed.length >= 1, "onResubscribed fired");
      assert.deepEqual(resubscribed.at(-1)?.toSorted(), CHANNELS.toSorted());
      for (const c of CHANNELS) {
        assert.equal(await admin.shardNumSub(channelKeys(prefix, c).pubsub), 1, `${c} again`);
      }

      for (const c of CHANNELS) await a.publish(c, "{}");
      await waitFor(() => received.length === 2 * CHANNELS.length, "delivered after recovery");
      for (const c of CHANNELS) {
        assert.deepEqual(
          received.filter((m) => m.channel === c).map((m) => m.offset),
          [1, 2],
          `${c} in order, once`,
        );
      }
    } finally {
      await stopPods();
    }
  });
});

describe("RedisBroker on a Redis Cluster with replicas: a coordinated failover", () => {
  let cluster: TestRedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3, { replicasPerMaster: 1 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("keeps every channel's epoch: replication, not a disk, carried the channels on", async () => {
    const prefix = `t_${randomBytes(4).toString("hex")}`;
    const a = new RedisBroker({ clusterNodes: cluster.nodes, prefix });
    try {
      await a.waitUntilReady();
      const before = new Map<ChannelName, string>();
      for (const c of CHANNELS) before.set(c, (await a.publish(c, "{}")).epoch);
      const replica = cluster.replicas[0];
      assert.ok(replica, "the cluster has a replica");
      await cluster.failover(replica.port);
      for (const c of CHANNELS) {
        const next = await a.publish(c, "{}");
        assert.deepEqual([next.epoch, next.offset], [before.get(c), 2], `${c} kept its epoch`);
      }
    } finally {
      await a.close();
    }
  });
});
