/**
 * The scale scenario (issue 20, target 4): `size.streams` concurrent SSE streams over
 * `size.pods` pods on one Redis or on a 3-master Redis Cluster. Stream `g` (global index)
 * carries room `g % rooms` and one broadcast channel, so the same streams serve
 *
 * (a) a burst of `burst` events on the broadcast channel to every stream: deliveries/s,
 *     p50/p99/max publish → receive, loss, pods' CPU per delivery;
 * (b) room phases (`size.roomPhases`): every room `rate` messages/s for a bounded window (room
 *     `r` published into pod `r % pods`), the last at the goal's 1/s: pods' and Redis' CPU
 *     per delivery, p50/p99/max, loss;
 * (c) the fleet's RSS per stream (delta over the pods' RSS before the streams opened, and
 *     total ÷ streams) and Redis `used_memory` (summed over the masters), with open rate and
 *     refusals.
 *
 * Every wait is bounded in count and time; pods, Redis and the generator's sockets are
 * stopped in `finally` (and on exit by `servers.ts` / the testkit).
 */
import { type Ctx, latencyValues, sleep, warm } from "../context.ts";
import { freshAddress } from "../generator.ts";
import { clientFor } from "../http-client.ts";
import { cpuNs, processTree, rssBytes } from "../proc.ts";
import { summarise, summaryText } from "../profile.ts";
import { waitFor } from "../publish.ts";
import {
  redisUsedMemory,
  startPinnedRedis,
  startPinnedRedisCluster,
  startRealtime,
  type Target,
} from "../servers.ts";
import { nowUs } from "../sse-parser.ts";
import {
  broadcastChannel,
  phaseFirstSeq,
  roomMessage,
  roomsMessagesPerRoom,
  type ScaleSize,
  splitStreams,
  verdict,
  wantedUpTo,
} from "./plan.ts";

export type Topology = "redis" | "cluster";

interface Broker {
  env: Record<string, string>;
  ports: number[];
  pids: number[];
  stop(): Promise<void>;
}

async function startBroker(topology: Topology): Promise<Broker> {
  if (topology === "redis") {
    const r = await startPinnedRedis();
    return {
      env: { REDIS_URL: r.url },
      ports: [r.port],
      pids: r.pid === undefined ? [] : [r.pid],
      stop: r.stop,
    };
  }
  const c = await startPinnedRedisCluster(3);
  return { env: { REDIS_CLUSTER_NODES: c.nodes }, ports: c.ports, pids: c.pids, stop: c.stop };
}

function usedMemory(ports: readonly number[]): number | null {
  let total = 0;
  for (const port of ports) {
    const used = redisUsedMemory(port);
    if (used === null) return null;
    total += used;
  }
  return total;
}

/** Waits for `promise` at most `ms` (the timer is cleared, so it keeps nothing alive). */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

const mb = (bytes: number | null) => (bytes === null ? null : Math.round(bytes / 1e5) / 10);
const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * Publishes `n` events on channel number `channel` into `target` on one pipelined connection
 * (in order), sequence numbers 1 … n; resolves with how many were acknowledged (2xx) and what
 * the others got ("503×2, error×1").
 */
async function burstInto(
  target: Target,
  channel: number,
  n: number,
): Promise<{ acked: number; failures: string }> {
  const client = clientFor(target, 1);
  let acked = 0;
  const failures = new Map<string, number>();
  const failed = (why: string) => {
    failures.set(why, (failures.get(why) ?? 0) + 1);
  };
  const sends: Promise<void>[] = [];
  for (let seq = 1; seq <= n; seq++) {
    sends.push(
      client.send(target.publish(channel, seq, nowUs())).then(
        (status) => {
          if (status >= 200 && status < 300) acked++;
          else failed(String(status));
        },
        (error: Error) => failed(`error ${error.message}`),
      ),
    );
  }
  await within(Promise.all(sends), 30_000);
  client.close();
  await within(Promise.all(sends), 1_000);
  return { acked, failures: [...failures].map(([why, k]) => `${why}×${k}`).join(", ") };
}

/**
 * One room phase: every room `rate` messages/s for `seconds`, each at its scheduled moment;
 * room `r` into pod `r % pods` on that pod's one pipelined connection (so a room's messages
 * stay in order). Returns per room how many of its first messages were acknowledged in a row
 * (what its members must hold), the failures (non-2xx, or no answer within 30 s of the end),
 * and how late the publisher itself fell behind its schedule.
 */
async function publishRooms(
  pods: readonly Target[],
  rooms: number,
  firstSeq: number,
  phase: { rate: number; seconds: number },
): Promise<{ acked: number[]; sent: number; failed: number; lateMs: number }> {
  const clients = pods.map((p) => clientFor(p, 1));
  const acked = new Array<number>(rooms).fill(0);
  const broken = new Array<boolean>(rooms).fill(false);
  let failed = 0;
  let lateMs = 0;
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  const total = rooms * roomsMessagesPerRoom(phase);
  for (let i = 0; i < total; i++) {
    const m = roomMessage(i, rooms, firstSeq, phase.rate);
    const wait = start + m.dueMs - performance.now();
    if (wait > 1) await sleep(wait);
    else lateMs = Math.max(lateMs, -wait);
    const pod = m.room % pods.length;
    const target = pods[pod] as Target;
    const fail = () => {
      failed++;
      broken[m.room] = true;
    };
    const p = (clients[pod] as ReturnType<typeof clientFor>)
      .send(target.publish(m.room, m.seq, nowUs()))
      .then((status) => {
        if (status < 200 || status >= 300) fail();
        else if (!broken[m.room]) acked[m.room] = (acked[m.room] as number) + 1;
      }, fail);
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }
  await within(Promise.all(pending), 30_000);
  for (const c of clients) c.close();
  // Closing rejects what is still unanswered: let those count as failed before returning.
  await within(Promise.all(pending), 1_000);
  return { acked, sent: total, failed, lateMs: Math.round(lateMs) };
}

/** The pods' refusals by reason (`realtime_streams_refused_total`), summed: "reason=n, …". */
async function refusalReasons(pods: readonly Target[]): Promise<string> {
  const totals = new Map<string, number>();
  for (const pod of pods) {
    const text = await fetch(`http://${pod.host}:${pod.port}/metrics`, {
      signal: AbortSignal.timeout(5_000),
    })
      .then((r) => r.text())
      .catch(() => "");
    for (const m of text.matchAll(/^realtime_streams_refused_total\{reason="([^"]+)"\} (\d+)/gm)) {
      totals.set(m[1] as string, (totals.get(m[1] as string) ?? 0) + Number(m[2]));
    }
  }
  return [...totals].map(([reason, n]) => `${reason}=${n}`).join(", ");
}

/** One run on one topology: the figures, or undefined when it failed (logged). */
export async function scaleRun(
  ctx: Ctx,
  size: ScaleSize,
  topology: Topology,
): Promise<Record<string, number | string | null> | undefined> {
  const broker = await startBroker(topology);
  const pods: Target[] = [];
  let profileWindows: { tag: string; fromUs: number; toUs: number }[] = [];
  try {
    const redisBefore = usedMemory(broker.ports);
    // BENCH_SCALE_PROFILE=<dir>: pod 0 runs under --cpu-prof; its self time over each room
    // phase is printed once it exited.
    const profileDir = process.env.BENCH_SCALE_PROFILE;
    const starting = await Promise.allSettled(
      Array.from({ length: size.pods }, (_, i) =>
        startRealtime({
          maxConnections: size.maxConnections,
          env: { ...broker.env, LISTEN_BACKLOG: "4096" },
          nodeFlags:
            profileDir && i === 0
              ? [
                  "--cpu-prof",
                  `--cpu-prof-dir=${profileDir}`,
                  `--cpu-prof-name=scale-${topology}.cpuprofile`,
                ]
              : undefined,
        }),
      ),
    );
    for (const s of starting) if (s.status === "fulfilled") pods.push(s.value);
    const failedStart = starting.find((s) => s.status === "rejected");
    if (failedStart) throw failedStart.reason;
    // Pods in production are warm: run each one's stream and publish paths once.
    if (size.warm !== false) for (const pod of pods) await warm(ctx, pod, 50, 50);
    const podPids = () => pods.flatMap((p) => processTree(p.pid));
    const fleetRss = () => rssBytes(podPids());
    await sleep(500);
    const rssBefore = fleetRss();

    // Open: every pod its share, all at once.
    const bc = broadcastChannel(size.rooms);
    const first = pods[0] as Target;
    const paths = Array.from(
      { length: size.rooms },
      (_, r) => `${first.subPath(r)}&channel=channel:b${bc}`,
    );
    const split = splitStreams(size.streams, size.pods);
    const openStart = nowUs();
    const results = await Promise.all(
      pods.map((pod, p) =>
        ctx.gen.open({
          host: pod.host,
          port: pod.port,
          paths,
          headers: pod.subHeaders,
          count: split[p]?.count ?? 0,
          first: split[p]?.first ?? 0,
          concurrency: 256,
          // A stream may wait this long for its answer; the open phase is bounded at 4× this
          // (+ 5 ms per stream): 127 s at 30 s was too short for a shared core (277 opened late).
          timeoutMs: 45_000,
        }),
      ),
    );
    const openMs = (nowUs() - openStart) / 1000;
    let opened = 0;
    let refused = 0;
    let openFailed = 0;
    let firstError: string | null = null;
    for (const r of results) {
      opened += r.ok;
      refused += r.status503;
      openFailed += r.otherStatus + r.errors + r.timeouts;
      firstError ??= r.firstError;
    }
    ctx.log(
      `  ${topology}: ${opened}/${size.streams} streams open in ${(openMs / 1000).toFixed(1)} s (${refused} refused, ${openFailed} failed${firstError ? `: ${firstError}` : ""})`,
    );
    // The fleet's CPU while its streams are idle (timers, heartbeats): a floor under (b)'s.
    const idleCpu = cpuNs(podPids());
    const idleStart = nowUs();
    await sleep(1_000);
    const idlePodsCpuPct = round(
      ((cpuNs(podPids()) - idleCpu) / 1e3 / (nowUs() - idleStart)) * 100,
    );
    const rssOpen = fleetRss();
    const redisOpen = usedMemory(broker.ports);
    const refusedWhy = refused > 0 ? await refusalReasons(pods) : "";

    // (a) The burst on the broadcast channel, to every stream.
    await ctx.gen.arm(1);
    const bytesBefore = (await ctx.gen.stats([])).bytes;
    const podsCpuA = cpuNs(podPids());
    const redisCpuA = cpuNs(broker.pids);
    const burstStart = nowUs();
    const burst = await burstInto(first, bc, size.burst);
    const burstAcked = burst.acked;
    if (burst.failures) ctx.log(`  (a) burst publishes not acknowledged: ${burst.failures}`);
    const wantA = new Array<number>(size.rooms).fill(burstAcked);
    await waitFor(
      async () => {
        const s = await ctx.gen.stats(wantA, 1);
        return { done: s.missing === 0, value: s.events };
      },
      { idleMs: 10_000, maxMs: 90_000, pollMs: 250 },
    );
    const podsCpuAEnd = cpuNs(podPids());
    const redisCpuAEnd = cpuNs(broker.pids);
    const a = await ctx.gen.stats(wantA, 1);
    const aSeconds = Math.max(1, a.lastEventUs - burstStart) / 1e6;
    const aLat = latencyValues(a.latency);
    ctx.log(
      `  (a) ${a.latency.count} deliveries in ${aSeconds.toFixed(2)} s, p50 ${aLat.p50Ms} ms, p99 ${aLat.p99Ms} ms, max ${aLat.maxMs} ms, loss ${a.missing}`,
    );
    const values: Record<string, number | string | null> = {
      topology,
      pods: size.pods,
      streams: opened,
      openPerSecond: Math.round(opened / (openMs / 1000)),
      openSeconds: round(openMs / 1000),
      refused,
      refusedReasons: refusedWhy,
      openFailed,
      idlePodsCpuPct,
      burstAcked,
      burstPublishFailures: burst.failures,
      burstDeliveries: a.latency.count,
      burstSeconds: round(aSeconds, 2),
      burstDeliveriesPerSecond: Math.round(a.latency.count / aSeconds),
      burstP50Ms: aLat.p50Ms ?? null,
      burstP99Ms: aLat.p99Ms ?? null,
      burstMaxMs: aLat.maxMs ?? null,
      burstLoss: a.missing,
      burstPodsUsPerDelivery:
        a.latency.count > 0 ? round((podsCpuAEnd - podsCpuA) / 1000 / a.latency.count, 2) : null,
      burstRedisCpuMs: round((redisCpuAEnd - redisCpuA) / 1e6),
      // What one event costs on the wire to one stream (SSE frame and chunk framing).
      burstBytesPerDelivery:
        a.latency.count > 0 ? Math.round((a.bytes - bytesBefore) / a.latency.count) : null,
    };

    // (b) The room phases, each bounded; the last is the goal's rate (1 message/s per room).
    const windows: { tag: string; fromUs: number; toUs: number }[] = [
      { tag: "burst", fromUs: burstStart, toUs: a.lastEventUs },
    ];
    let goalRooms: { p99Ms: number | null; loss: number } = { p99Ms: null, loss: 0 };
    for (let phase = 0; phase < size.roomPhases.length; phase++) {
      const spec = size.roomPhases[phase] as { rate: number; seconds: number };
      const firstSeq = phaseFirstSeq(size, phase);
      await ctx.gen.arm(firstSeq);
      const podsCpu = cpuNs(podPids());
      const redisCpu = cpuNs(broker.pids);
      const t0 = nowUs();
      const rooms = await publishRooms(pods, size.rooms, firstSeq, spec);
      const want = wantedUpTo(firstSeq, rooms.acked);
      await waitFor(
        async () => {
          const s = await ctx.gen.stats(want, firstSeq);
          return { done: s.missing === 0, value: s.events };
        },
        { idleMs: 10_000, maxMs: 60_000, pollMs: 250 },
      );
      const t1 = nowUs();
      const podsUs = (cpuNs(podPids()) - podsCpu) / 1000;
      const redisUs = (cpuNs(broker.pids) - redisCpu) / 1000;
      const st = await ctx.gen.stats(want, firstSeq);
      const deliveries = st.latency.count;
      const lat = latencyValues(st.latency);
      const acked = rooms.acked.reduce((x, y) => x + y, 0);
      const tag = `rooms${spec.rate}`;
      windows.push({ tag, fromUs: t0, toUs: t1 });
      ctx.log(
        `  (b) ${spec.rate}/s per room for ${spec.seconds} s: ${acked}/${rooms.sent} messages acknowledged, ${deliveries} deliveries, p50 ${lat.p50Ms} ms, p99 ${lat.p99Ms} ms, max ${lat.maxMs} ms, loss ${st.missing}`,
      );
      Object.assign(values, {
        [`${tag}Messages`]: rooms.sent,
        [`${tag}Acked`]: acked,
        [`${tag}PublishFailed`]: rooms.failed,
        [`${tag}PublisherLateMs`]: rooms.lateMs,
        [`${tag}Deliveries`]: deliveries,
        [`${tag}DeliveriesPerSecond`]: Math.round(deliveries / ((t1 - t0) / 1e6)),
        [`${tag}P50Ms`]: lat.p50Ms ?? null,
        [`${tag}P99Ms`]: lat.p99Ms ?? null,
        [`${tag}MaxMs`]: lat.maxMs ?? null,
        [`${tag}Loss`]: st.missing,
        [`${tag}PodsUsPerDelivery`]: deliveries > 0 ? round(podsUs / deliveries, 2) : null,
        [`${tag}PodsCpuPct`]: round((podsUs / (t1 - t0)) * 100),
        [`${tag}RedisCpuPct`]: round((redisUs / (t1 - t0)) * 100),
        [`${tag}Seconds`]: round((t1 - t0) / 1e6),
      });
      if (phase === size.roomPhases.length - 1) {
        goalRooms = {
          p99Ms: lat.p99Ms ?? null,
          // Messages never acknowledged count as lost too: the goal's rate was not carried.
          loss: st.missing + (rooms.sent - acked) * (size.streams / size.rooms),
        };
      }
    }

    // (c) Memory once every phase ran (history written, buffers grown).
    const rssEnd = fleetRss();
    const redisEnd = usedMemory(broker.ports);
    const per = (bytes: number) => (opened > 0 ? Math.round(bytes / opened / 102.4) / 10 : null);
    const v = verdict({
      broadcastP99Ms: aLat.p99Ms ?? null,
      broadcastLoss: a.missing + (size.burst - burstAcked) * opened,
      roomsP99Ms: goalRooms.p99Ms,
      roomsLoss: goalRooms.loss,
    });
    const end = await ctx.gen.stats(new Array<number>(size.rooms).fill(0));
    Object.assign(values, {
      burstGoal: v.broadcast,
      roomsGoal: v.rooms,
      closedEarly: end.closedEarly,
      stillOpen: end.open,
      fleetRssBeforeMb: mb(rssBefore),
      fleetRssOpenMb: mb(rssOpen),
      fleetRssEndMb: mb(rssEnd),
      rssKbPerStream: per(rssOpen - rssBefore),
      rssKbPerStreamEnd: per(rssEnd - rssBefore),
      redisUsedMbBefore: mb(redisBefore),
      redisUsedMbOpen: mb(redisOpen),
      redisUsedMbEnd: mb(redisEnd),
    });
    profileWindows = windows;
    return values;
  } catch (error) {
    ctx.log(`  ${topology} failed: ${(error as Error).stack ?? error}`);
    return undefined;
  } finally {
    await ctx.gen.closeAll().catch(() => {});
    freshAddress();
    await Promise.all(pods.map((p) => p.stop().catch(() => {})));
    await broker.stop().catch(() => {});
    const dir = process.env.BENCH_SCALE_PROFILE;
    for (const w of dir ? profileWindows : []) {
      try {
        const text = summaryText(summarise(`${dir}/scale-${topology}.cpuprofile`, w, 25));
        ctx.log(`  pod 0 profile, ${w.tag}:\n${text}`);
      } catch (error) {
        ctx.log(`  no profile: ${(error as Error).message}`);
      }
    }
  }
}
