/**
 * Fan-out at max rate: N subscribers over K channels, M events published as fast as the
 * server takes them → deliveries/s, server CPU per delivery, latency, loss (must be 0).
 */
import { type Ctx, label, latencyValues, sleep, warm, withTargets } from "../context.ts";
import { CpuMeter } from "../proc.ts";
import { publishBurst, waitFor } from "../publish.ts";
import {
  type ServerKind,
  type StartOptions,
  startPinnedRedis,
  startServer,
  type Target,
} from "../servers.ts";

export interface FanoutShape {
  subs: number;
  channels: number;
  /** Events per channel. */
  events: number;
  h2Sessions?: number;
}

export async function fanoutRun(
  ctx: Ctx,
  sub: Target,
  pub: Target,
  cpuRoot: number,
  shape: FanoutShape,
): Promise<Record<string, number | null>> {
  const paths = Array.from({ length: shape.channels }, (_, c) => sub.subPath(c));
  const r = await ctx.gen.open({
    host: sub.host,
    port: sub.port,
    paths,
    headers: sub.subHeaders,
    count: shape.subs,
    h2Sessions: shape.h2Sessions,
  });
  if (r.ok !== shape.subs) ctx.log(`  only ${r.ok}/${shape.subs} streams (${r.firstError})`);
  await sleep(500);
  await ctx.gen.arm(1);
  const expected = Array.from({ length: shape.channels }, () => shape.events);
  const want = r.ok * shape.events;
  const cpu = new CpuMeter(cpuRoot);
  cpu.start();
  const published = await publishBurst(pub, shape.channels, shape.events, {
    window: 64,
    timeoutMs: 60_000,
  });
  const complete = await waitFor(
    async () => {
      const s = await ctx.gen.stats(expected);
      return { done: s.events >= want, value: s.events };
    },
    { idleMs: 5_000, maxMs: 90_000, pollMs: 20 },
  );
  const used = cpu.stop();
  const s = await ctx.gen.stats(expected);
  const spanUs = s.lastEventUs - published.startUs;
  if (!complete) ctx.log(`  incomplete after the time bound: ${s.events}/${want} deliveries`);
  if (published.failed > 0)
    ctx.log(`  publish failures by status: ${JSON.stringify(published.statuses)}`);
  return {
    streams: r.ok,
    deliveries: s.events,
    deliveriesPerSec: spanUs > 0 ? Math.round(s.events / (spanUs / 1e6)) : null,
    usPerDelivery: s.events > 0 ? Math.round((used.cpuNs / 1000 / s.events) * 100) / 100 : null,
    publishMs: Math.round((published.endUs - published.startUs) / 1000),
    ...latencyValues(s.latency),
    loss: s.missing,
    dups: s.dups,
    reordered: s.reordered,
    publishFailed: published.failed,
    fromUs: published.startUs,
    toUs: s.lastEventUs,
  };
}

function shapes(ctx: Ctx): { name: string; shape: FanoutShape }[] {
  return ctx.quick
    ? [
        { name: "fan-out 500×50", shape: { subs: 500, channels: 1, events: 50 } },
        { name: "fan-out 100×500", shape: { subs: 100, channels: 1, events: 500 } },
        { name: "fan-out 500 on 10 ch", shape: { subs: 500, channels: 10, events: 20 } },
      ]
    : [
        { name: "fan-out 10k×200", shape: { subs: 10_000, channels: 1, events: 200 } },
        { name: "fan-out 1k×2k", shape: { subs: 1_000, channels: 1, events: 2_000 } },
        { name: "fan-out 10k on 100 ch", shape: { subs: 10_000, channels: 100, events: 50 } },
      ];
}

export async function fanout(ctx: Ctx, only?: string): Promise<void> {
  for (const { name, shape } of shapes(ctx)) {
    if (only && !name.includes(only)) continue;
    ctx.log(
      `${name}: ${shape.subs} subscribers on ${shape.channels} channel(s), ${shape.events} events each, max rate`,
    );
    for (const kind of ctx.servers) {
      await withTargets(
        ctx,
        async () => [await startServer(kind)],
        async ([t]) => {
          await warm(ctx, t!);
          const values = await fanoutRun(ctx, t!, t!, t!.pid, shape);
          ctx.log(`  ${label(kind)}: ${JSON.stringify(values)}`);
          ctx.record({ scenario: name, server: label(kind), values, notes: [] });
        },
      );
    }
  }
}

/** Our service's fan-out 10k×200 under `--cpu-prof`, for the profile in the README. */
export async function profileFanout(
  ctx: Ctx,
): Promise<{ path: string; window?: { fromUs: number; toUs: number } } | undefined> {
  if (!ctx.profileDir) return undefined;
  const shape = ctx.quick
    ? { subs: 500, channels: 1, events: 50 }
    : { subs: 10_000, channels: 1, events: 200 };
  const opts: StartOptions = {
    nodeFlags: [
      "--cpu-prof",
      `--cpu-prof-dir=${ctx.profileDir}`,
      "--cpu-prof-name=fanout.cpuprofile",
    ],
  };
  ctx.log(`profile: realtime fan-out ${shape.subs}×${shape.events} under --cpu-prof`);
  let window: { fromUs: number; toUs: number } | undefined;
  await withTargets(
    ctx,
    async () => [await startServer("realtime", opts)],
    async ([t]) => {
      await warm(ctx, t!);
      const values = await fanoutRun(ctx, t!, t!, t!.pid, shape);
      window = { fromUs: values.fromUs as number, toUs: values.toUs as number };
      ctx.log(`  profiled run: ${JSON.stringify(values)}`);
    },
  );
  return { path: `${ctx.profileDir}/fanout.cpuprofile`, window };
}

/** HTTP/2: fan-out with the streams multiplexed over a few sessions. */
export async function h2Fanout(ctx: Ctx): Promise<void> {
  const shape: FanoutShape = ctx.quick
    ? { subs: 200, channels: 1, events: 100, h2Sessions: 2 }
    : { subs: 1_000, channels: 1, events: 1_000, h2Sessions: 10 };
  const name = `h2 fan-out ${ctx.quick ? "200×100" : "1k×1k"}`;
  ctx.log(`${name}: ${shape.subs} streams over ${shape.h2Sessions} HTTP/2 sessions, max rate`);
  for (const kind of ctx.servers.filter(
    (k): k is ServerKind => k === "realtime" || k === "nchan",
  )) {
    await withTargets(
      ctx,
      async () => [await startServer(kind, { h2: true })],
      async ([t]) => {
        await warm(ctx, t!);
        const values = await fanoutRun(ctx, t!, t!, t!.pid, shape);
        ctx.log(`  ${label(kind, "h2")}: ${JSON.stringify(values)}`);
        ctx.record({ scenario: name, server: label(kind, "h2"), values, notes: [] });
      },
    );
  }
}

/**
 * A fast publisher across pods: subscribers on B, a burst into A at max rate. The worst
 * latency is the backlog the path builds up.
 */
export async function crossPodBurst(ctx: Ctx): Promise<void> {
  const shape: FanoutShape = ctx.quick
    ? { subs: 100, channels: 1, events: 500 }
    : { subs: 1_000, channels: 1, events: 2_000 };
  const name = `cross-pod burst ${ctx.quick ? "100×500" : "1k×2k"}`;
  ctx.log(`${name}: subscribers on pod B, burst into pod A`);
  for (const kind of ctx.servers.filter(
    (k): k is ServerKind => k === "realtime" || k === "nchan",
  )) {
    const redis = await startPinnedRedis();
    try {
      await withTargets(
        ctx,
        async () => [
          await startServer(kind, { redisUrl: redis.url }),
          await startServer(kind, { redisUrl: redis.url }),
        ],
        async ([a, b]) => {
          await warm(ctx, b!);
          const values = await fanoutRun(ctx, b!, a!, b!.pid, shape);
          ctx.log(`  ${label(kind)}: ${JSON.stringify(values)}`);
          ctx.record({ scenario: name, server: label(kind), values, notes: [] });
        },
      );
    } finally {
      await redis.stop();
    }
  }
}
