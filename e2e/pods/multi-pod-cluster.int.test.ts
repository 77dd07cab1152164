/**
 * Two real service processes on a 3-master Redis Cluster this file creates itself: sharded
 * pub/sub carries events between pods exactly once and in order, and only the slot owner
 * sees a channel's subscription (PUBSUB SHARDNUMSUB).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ClusterAdmin } from "@realtime/redis/testing";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { redisCli, startRedisCluster, type TestRedisCluster } from "@realtime/testkit/redis";
import { crossPodChat, idempotentAcrossPods, subscriberCounts } from "@realtime/testkit/scenarios";

describe("two pods on a 3-master Redis Cluster", { timeout: 180_000 }, () => {
  let cluster: TestRedisCluster;
  let admin: ClusterAdmin;
  let a: Pod;
  let b: Pod;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    cluster = await startRedisCluster(3);
    admin = new ClusterAdmin(cluster.nodes);
    const nodes = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(",");
    [a, b] = (await withPods(2, { REDIS_CLUSTER_NODES: nodes })) as [Pod, Pod];
  });
  after(async () => {
    await stopPods([a, b]);
    await admin?.close();
    await cluster?.stop();
    release?.();
  });

  it("subscribe on B, post on A: 2,000 events on 6 channels over 3 shards, exactly once and in order", async () => {
    const channels = ["one", "two", "three", "four", "five", "six"].map((c) => `channel:${c}`);
    // The channels must really spread over the masters, or this proves nothing about sharding.
    const owners = new Set<unknown>();
    for (const channel of channels) owners.add(await admin.owner(`realtime:{${channel}}`));
    assert.equal(owners.size, 3, "the channels live on all three masters");
    await crossPodChat(a, b, { channels, events: 2_000, posters: 8 });
  });

  it("one Idempotency-Key posted to both pods at once publishes exactly one event", async () => {
    await idempotentAcrossPods(a, b);
  });

  it("only the slot owner sees a subscription, and only while a stream is open (SHARDNUMSUB)", async () => {
    const channel = "channel:shardnumsub";
    const pubsub = `realtime:{${channel}}`;
    const owner = (await admin.owner(pubsub)).options.port;
    await subscriberCounts(a, b, channel, async () => {
      // Ask every master; only the slot owner may ever count a subscriber.
      const counts = await Promise.all(
        cluster.nodes.map(async (node) => ({
          port: node.port,
          n: Number((await redisCli(node.port, "PUBSUB", "SHARDNUMSUB", pubsub)).split("\n")[1]),
        })),
      );
      for (const { port, n } of counts) {
        if (port !== owner) assert.equal(n, 0, `master ${port} does not own ${pubsub}`);
      }
      return counts.find((c) => c.port === owner)?.n ?? Number.NaN;
    });
  });
});
