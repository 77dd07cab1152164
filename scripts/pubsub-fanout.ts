/**
 * Measures what each pod's Redis subscriber connection receives with per-channel SUBSCRIBE
 * (what the RedisBroker does) versus one pattern subscription `realtime:*` per pod:
 *
 *     node scripts/pubsub-fanout.ts [--pods 2,4,8] [--channels 1000] [--events 20000]
 *
 * N "pods" each hold local subscribers for a disjoint share of the channels; M events are
 * published round-robin over all channels through the real publish path (RedisBroker's Lua
 * script: offset, history, PUBLISH). Per-channel mode: each pod is a RedisBroker subscribed to
 * its own channels. Pattern mode: each pod is one connection with PSUBSCRIBE `<prefix>:*`, as
 * a naive implementation would have, which must then drop what it has no subscriber for.
 * Reported per mode: messages each pod's connection received, how many it had to drop, and
 * Redis' output bytes and CPU for the run.
 *
 * With `--cluster` it also counts cluster-bus messages for M classic PUBLISHes versus M
 * SPUBLISHes on a 3-master Redis Cluster (pattern subscriptions exist only for classic
 * pub/sub, which every master broadcasts to every other master).
 *
 * Starts its own redis-server processes on free ports; never touches another Redis.
 */
import { parseArgs } from "node:util";
import type { ChannelName } from "@realtime/protocol";
import { RedisBroker } from "@realtime/redis";
import { redisCli, startRedis, startRedisCluster } from "@realtime/testkit/redis";
import { Cluster, Redis } from "ioredis";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "2,4,8" },
    channels: { type: "string", default: "1000" },
    events: { type: "string", default: "20000" },
    cluster: { type: "boolean", default: false },
  },
});
const podCounts = values.pods.split(",").map(Number);
const channelCount = Number(values.channels);
const eventCount = Number(values.events);
const PREFIX = "fanout";
const IN_FLIGHT = 256;

const redis = await startRedis();

interface RedisStats {
  cpuMs: number;
  outBytes: number;
}

async function redisStats(port: number): Promise<RedisStats> {
  const info = await redisCli(port, "INFO", "all");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\S+)`, "m").exec(info)?.[1] ?? 0);
  return {
    cpuMs: (field("used_cpu_user") + field("used_cpu_sys")) * 1000,
    outBytes: field("total_net_output_bytes"),
  };
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Publishes `eventCount` events round-robin over `channels`, `IN_FLIGHT` at a time. */
async function publishAll(publisher: RedisBroker, channels: readonly ChannelName[]) {
  const data = JSON.stringify({ type: "tick", message: "x".repeat(100) });
  let next = 0;
  const worker = async () => {
    while (next < eventCount) {
      const n = next++;
      await publisher.publish(channels[n % channels.length] as ChannelName, data);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

interface Result {
  readonly mode: string;
  readonly pods: number;
  readonly receivedPerPod: number[];
  readonly droppedPerPod: number[];
  readonly redis: RedisStats;
  readonly ms: number;
}

async function run(mode: "subscribe" | "psubscribe", pods: number, run: number): Promise<Result> {
  const prefix = `${PREFIX}${run}`;
  const channels = Array.from({ length: channelCount }, (_, i) => `channel:c${i}` as ChannelName);
  const owner = (channel: string) => Number(/c(\d+)\}?$/.exec(channel)?.[1]) % pods;
  const received = Array.from({ length: pods }, () => 0);
  const dropped = Array.from({ length: pods }, () => 0);
  const closers: (() => unknown)[] = [];
  if (mode === "subscribe") {
    for (let p = 0; p < pods; p++) {
      const broker = new RedisBroker({ url: redis.url, prefix, probeIntervalMs: 0 });
      closers.push(() => broker.close());
      broker.setListener((message) => {
        received[p] = (received[p] ?? 0) + 1;
        if (owner(message.channel) !== p) dropped[p] = (dropped[p] ?? 0) + 1;
      });
      await broker.waitUntilReady();
      await Promise.all(channels.filter((c) => owner(c) === p).map((c) => broker.subscribe(c)));
    }
  } else {
    for (let p = 0; p < pods; p++) {
      const connection = new Redis(redis.url);
      closers.push(() => connection.disconnect());
      connection.on("pmessage", (_pattern: string, channel: string) => {
        if (!channel.includes("{channel:")) return; // another pod's liveness probe
        received[p] = (received[p] ?? 0) + 1;
        if (owner(channel) !== p) dropped[p] = (dropped[p] ?? 0) + 1;
      });
      await connection.psubscribe(`${prefix}:*`);
    }
  }
  const publisher = new RedisBroker({ url: redis.url, prefix, probeIntervalMs: 0 });
  closers.push(() => publisher.close());
  await publisher.waitUntilReady();
  const before = await redisStats(redis.port);
  const started = performance.now();
  await publishAll(publisher, channels);
  const expected = mode === "subscribe" ? eventCount : eventCount * pods;
  await until(() => received.reduce((s, n) => s + n, 0) >= expected, 60_000, `${mode} delivery`);
  const ms = performance.now() - started;
  const after = await redisStats(redis.port);
  for (const close of closers) await close();
  await redisCli(redis.port, "FLUSHDB"); // this script's own throwaway server
  return {
    mode,
    pods,
    receivedPerPod: received,
    droppedPerPod: dropped,
    redis: { cpuMs: after.cpuMs - before.cpuMs, outBytes: after.outBytes - before.outBytes },
    ms,
  };
}

const results: Result[] = [];
let runs = 0;
try {
  await run("subscribe", 2, runs++); // warm-up (script cache, JIT, connections): not reported
  for (const pods of podCounts) {
    for (const mode of ["subscribe", "psubscribe"] as const) {
      results.push(await run(mode, pods, runs++));
    }
  }
} finally {
  await redis.stop();
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(
  `\n${fmt(eventCount)} events over ${fmt(channelCount)} channels, each channel subscribed on exactly one pod\n`,
);
console.log(
  "| pods | mode                      | received per pod | dropped per pod | Redis output | Redis CPU | wall |",
);
console.log(
  "| ---: | ------------------------- | ---------------: | --------------: | -----------: | --------: | ---: |",
);
for (const r of results) {
  const label = r.mode === "subscribe" ? "per-channel SUBSCRIBE" : `one PSUBSCRIBE ${PREFIX}:*`;
  const per = r.receivedPerPod.reduce((s, n) => s + n, 0) / r.pods;
  const drop = r.droppedPerPod.reduce((s, n) => s + n, 0) / r.pods;
  console.log(
    `| ${r.pods} | ${label.padEnd(25)} | ${fmt(per)} | ${fmt(drop)} | ${(r.redis.outBytes / 1e6).toFixed(1)} MB | ${fmt(r.redis.cpuMs)} ms | ${fmt(r.ms)} ms |`,
  );
}

if (values.cluster) {
  const cluster = await startRedisCluster(3);
  try {
    const client = new Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
    const busMessages = async () => {
      let sum = 0;
      for (const node of cluster.nodes) {
        const info = await redisCli(node.port, "CLUSTER", "INFO");
        for (const m of info.matchAll(/^cluster_stats_messages_publish(?:shard)?_sent:(\d+)/gm)) {
          sum += Number(m[1]);
        }
      }
      return sum;
    };
    const measure = async (command: "publish" | "spublish") => {
      const before = await busMessages();
      for (let i = 0; i < eventCount; i += IN_FLIGHT) {
        await Promise.all(
          Array.from({ length: Math.min(IN_FLIGHT, eventCount - i) }, (_, k) =>
            client[command](`${PREFIX}:{channel:c${(i + k) % channelCount}}`, "x"),
          ),
        );
      }
      return (await busMessages()) - before;
    };
    const classic = await measure("publish");
    const sharded = await measure("spublish");
    client.disconnect();
    console.log(
      `\n3-master Redis Cluster, ${fmt(eventCount)} events: cluster-bus messages ` +
        `${fmt(classic)} with classic PUBLISH (needed for any PSUBSCRIBE), ${fmt(sharded)} with SPUBLISH`,
    );
  } finally {
    await cluster.stop();
  }
}
