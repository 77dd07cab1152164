/**
 * A Redis Cluster master fails over to its replica while two pods stream and publish through
 * it (3 masters, 3 replicas, started here). A coordinated `CLUSTER FAILOVER` loses nothing, so
 * every client must end with every accepted event once, in order, with no reset — the pods'
 * sharded subscriptions must follow the slots to the new master on their own.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ClusterAdmin } from "@realtime/redis/testing";
import { assertComplete, login, postJson, publishLoad, serviceToken } from "@realtime/testkit/load";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { redisCli, startRedisCluster, type TestRedisCluster } from "@realtime/testkit/redis";
import { ReadyWatch, until } from "@realtime/testkit/scenarios";
import { StreamClient } from "@realtime/testkit/stream";

/** Twelve rooms whose slots spread over the three masters' ranges. */
const CHANNELS = Array.from({ length: 12 }, (_, i) => `channel:room_${i}`);

describe("Redis Cluster failover under load", { timeout: 180_000 }, () => {
  let cluster: TestRedisCluster;
  let admin: ClusterAdmin;
  let a: Pod;
  let b: Pod;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    cluster = await startRedisCluster(3, { replicasPerMaster: 1 });
    admin = new ClusterAdmin([...cluster.nodes, ...cluster.replicas]);
    const seeds = [...cluster.nodes, ...cluster.replicas].map((n) => `${n.host}:${n.port}`);
    [a, b] = (await withPods(2, { REDIS_CLUSTER_NODES: seeds.join(",") })) as [Pod, Pod];
  });
  after(async () => {
    await stopPods([a, b]);
    await admin?.close();
    await cluster?.stop();
    release?.();
  });

  it("a master fails over to its replica: every event once, in order, no reset", async () => {
    assert.equal(cluster.replicas.length, 3);
    const owners = new Set<number>();
    for (const channel of CHANNELS) {
      owners.add((await admin.owner(`realtime:{${channel}}`)).options.port ?? 0);
    }
    assert.equal(owners.size, 3, "the rooms live on all three masters");
    const victim = (await admin.owner(`realtime:{${CHANNELS[0]}}`)).options.port as number;
    const replica = cluster.replicas.find((r) => r.masterPort === victim);
    assert.ok(replica, `a replica of ${victim}`);

    const token = await serviceToken();
    const user = await login(b.url, "Failover");
    const clients = [
      new StreamClient(user.token, CHANNELS.slice(0, 6)),
      new StreamClient(user.token, CHANNELS.slice(6)),
      new StreamClient(user.token, [CHANNELS[0] as string, CHANNELS[11] as string]),
    ];
    const watches = [new ReadyWatch(a), new ReadyWatch(b)];
    try {
      for (const [i, client] of clients.entries()) {
        assert.equal(await client.connect(i === 2 ? a.url : b.url), 200);
      }
      const load = publishLoad({
        podUrls: () => [a.url, b.url],
        token,
        channels: CHANNELS,
        rate: 300,
        durationMs: 30_000,
        maxEvents: 3_000,
      });
      const first = clients[0] as StreamClient;
      await until(() => first.count(CHANNELS[0] as string, "tick") >= 20, 10_000, "flow");
      await cluster.failover(replica.port);
      const owner = (await admin.owner(`realtime:{${CHANNELS[0]}}`)).options.port;
      assert.equal(owner, replica.port, "the replica owns the slot now");
      const published = await load;
      // A publish that met the switch may be refused (503, "try again"); none may be lost.
      assert.deepEqual(
        [...published.failures.keys()].filter((status) => status !== 503),
        [],
        "only 503s, if any",
      );
      await assertComplete(clients, published);
      for (const client of clients) {
        assert.deepEqual(client.statuses, [200], "the stream stayed open");
      }
    } finally {
      for (const client of clients) client.close();
      await Promise.all(watches.map((w) => w.stop()));
    }
  });
});

describe("Redis Cluster master lost with writes its replica never got", {
  timeout: 180_000,
}, () => {
  let cluster: TestRedisCluster;
  let a: Pod;
  let b: Pod;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    cluster = await startRedisCluster(3, { replicasPerMaster: 1 });
    const seeds = [...cluster.nodes, ...cluster.replicas].map((n) => `${n.host}:${n.port}`);
    [a, b] = (await withPods(2, { REDIS_CLUSTER_NODES: seeds.join(",") })) as [Pod, Pod];
  });
  after(async () => {
    await stopPods([a, b]);
    await cluster?.stop();
    release?.();
  });

  it("the replica takes over without the last events: one reset, then every new event", async () => {
    const channel = "channel:takeover";
    const key = `realtime:meta:{${channel}}`;
    const admin = new ClusterAdmin([...cluster.nodes, ...cluster.replicas]);
    const token = await serviceToken();
    const user = await login(b.url, "Takeover");
    const client = new StreamClient(user.token, [channel]);
    try {
      const master = (await admin.owner(key)).options.port as number;
      const replica = cluster.replicas.find((r) => r.masterPort === master)?.port;
      assert.ok(replica, `a replica of ${master}`);
      assert.equal(await client.connect(b.url), 200);
      /** Publishes ticks #from…; resolves with the offset the last one was given. */
      const publish = async (n: number, from: number) => {
        let offset = 0;
        for (let i = from; i < from + n; i++) {
          const { status, body } = await postJson(a.url, "/api/publish", token, {
            channel,
            event: { type: "tick", message: `#${i}` },
          });
          assert.equal(status, 202, body);
          offset = (JSON.parse(body) as { offset: number }).offset;
        }
        return offset;
      };
      const delivered = (offset: number) =>
        client.untilOffsets(new Map([[channel, offset]]), 10_000);
      await delivered(await publish(10, 0));
      // The replica stops following; the master acknowledges five more, which only it has.
      const replOffset = async (port: number, field: string) =>
        new RegExp(`${field}:(\\d+)`).exec(await redisCli(port, "INFO", "replication"))?.[1];
      await until(
        async () =>
          (await replOffset(replica, "slave_repl_offset")) ===
          (await replOffset(master, "master_repl_offset")),
        10_000,
        "the replica caught up first",
      );
      const epoch = await redisCli(master, "HGET", key, "epoch");
      // Frozen, and cut off: what the master accepts from now on never reaches the replica.
      cluster.signal(replica, "SIGSTOP");
      try {
        await redisCli(master, "CLIENT", "KILL", "TYPE", "replica");
        await delivered(await publish(5, 10));
        // The master dies with them; the replica takes over (as an operator, or the cluster
        // after cluster-node-timeout, would).
        cluster.signal(master, "SIGKILL");
      } finally {
        cluster.signal(replica, "SIGCONT");
      }
      await redisCli(replica, "CLUSTER", "FAILOVER", "TAKEOVER");
      await until(
        async () => (await redisCli(replica, "HGET", key, "epoch")) !== epoch,
        30_000,
        "a pod moved the channel to a new epoch",
      );
      await until(
        async () => (await a.readyz()) === 200 && (await b.readyz()) === 200,
        30_000,
        "both pods ready",
      );
      // The last of them at its offset in the new epoch. (Counting 20 ticks over both epochs
      // named no position: a duplicate from before the reset would have stood in for a new one.)
      const newTop = await publish(5, 15);
      await client.until(
        () =>
          (client.log.get(channel)?.resets.length ?? 0) === 1 &&
          client.lastOffset(channel) >= newTop,
        20_000,
        () => client.describe(),
      );
      const log = client.log.get(channel);
      assert.ok(log);
      assert.deepEqual(log.resets, ["epoch_changed"]);
      const since = log.events.slice(log.resetAt[0]);
      assert.deepEqual(
        since.map((e) => e.offset),
        Array.from({ length: since.length }, (_, i) => i + 1),
        "the new epoch from offset 1, no gap",
      );
      assert.deepEqual(
        since.filter((e) => e.json.type === "tick").map((e) => e.json.message),
        ["#15", "#16", "#17", "#18", "#19"],
      );
    } finally {
      client.close();
      await admin.close();
    }
  });
});
