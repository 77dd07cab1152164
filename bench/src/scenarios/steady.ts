/**
 * Steady load: S subscribers on one channel, R events/s, after a warm-up: server CPU per
 * delivery and publish→receive latency. The same run across two pods (cross-pod, Redis) and
 * over HTTP/2 (many streams per session).
 */
import {
  type Ctx,
  label,
  latencyValues,
  type Measurement,
  sleep,
  warm,
  withTargets,
} from "../context.ts";
import { CpuMeter } from "../proc.ts";
import { publishSteady, waitFor } from "../publish.ts";
import { type ServerKind, startPinnedRedis, startServer, type Target } from "../servers.ts";

interface SteadyOptions {
  subs: number;
  rate: number;
  warmSeconds: number;
  /** Length of one measured window. */
  seconds: number;
  windows: number;
  h2Sessions?: number;
}

function options(ctx: Ctx): SteadyOptions {
  return ctx.quick
    ? { subs: 100, rate: 20, warmSeconds: 1, seconds: 2, windows: 1 }
    : { subs: 1_000, rate: 20, warmSeconds: 2, seconds: 4, windows: 3 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? null;

/**
 * Subscribes on `sub`, publishes into `pub` at a steady rate and measures `o.windows`
 * consecutive windows (CPU of `cpuRoot`'s process tree, latency of the window's events); the
 * result is the median window, and the worst latency of all.
 */
export async function steadyRun(
  ctx: Ctx,
  sub: Target,
  pub: Target,
  cpuRoot: number,
  o: SteadyOptions,
): Promise<Record<string, number | null>> {
  const r = await ctx.gen.open({
    host: sub.host,
    port: sub.port,
    paths: [sub.subPath(0)],
    headers: sub.subHeaders,
    count: o.subs,
    h2Sessions: o.h2Sessions,
  });
  if (r.ok !== o.subs) ctx.log(`  only ${r.ok}/${o.subs} streams (${r.firstError})`);
  await sleep(500);
  const warmEvents = Math.round(o.rate * o.warmSeconds);
  const perWindow = Math.round(o.rate * o.seconds);
  await publishSteady(pub, o.rate, o.warmSeconds, 1);
  await sleep(100);
  const windows: Record<string, number | null>[] = [];
  let next = warmEvents + 1;
  let failed = 0;
  for (let w = 0; w < o.windows; w++) {
    await ctx.gen.arm(next);
    const before = await ctx.gen.stats([]);
    const cpu = new CpuMeter(cpuRoot);
    cpu.start();
    const published = await publishSteady(pub, o.rate, o.seconds, next);
    await sleep(100);
    const used = cpu.stop();
    failed += published.failed;
    next += perWindow;
    await sleep(300);
    const after = await ctx.gen.stats([]);
    const deliveries = after.events - before.events;
    windows.push({
      deliveriesPerSec: Math.round(deliveries / (used.wallNs / 1e9)),
      cpuPct: Math.round((used.cpuNs / used.wallNs) * 1000) / 10,
      usPerDelivery: deliveries > 0 ? Math.round((used.cpuNs / 1000 / deliveries) * 10) / 10 : null,
      ...latencyValues(after.latency),
    });
  }
  const total = next - 1;
  await waitFor(
    async () => {
      const s = await ctx.gen.stats([total]);
      return { done: s.missing === 0, value: s.events };
    },
    { idleMs: 3_000, maxMs: 30_000 },
  );
  const end = await ctx.gen.stats([total]);
  const pick = (key: string) =>
    median(windows.map((w) => w[key]).filter((v): v is number => typeof v === "number"));
  const worst = windows.map((w) => w.maxMs).filter((v): v is number => typeof v === "number");
  return {
    streams: r.ok,
    deliveriesPerSec: pick("deliveriesPerSec"),
    cpuPct: pick("cpuPct"),
    usPerDelivery: pick("usPerDelivery"),
    p50Ms: pick("p50Ms"),
    p99Ms: pick("p99Ms"),
    maxMs: worst.length > 0 ? Math.max(...worst) : null,
    loss: end.missing,
    dups: end.dups,
    publishFailed: failed,
  };
}

function record(ctx: Ctx, scenario: string, server: string, values: Record<string, number | null>) {
  ctx.log(`  ${server}: ${JSON.stringify(values)}`);
  const m: Measurement = { scenario, server, values, notes: [] };
  ctx.record(m);
}

export async function steady(ctx: Ctx): Promise<void> {
  const o = options(ctx);
  ctx.log(
    `steady: ${o.subs} subscribers × ${o.rate} events/s, median of ${o.windows} windows of ${o.seconds} s`,
  );
  for (const kind of ctx.servers) {
    await withTargets(
      ctx,
      async () => [await startServer(kind)],
      async ([t]) => {
        await warm(ctx, t!);
        record(ctx, "steady", label(kind), await steadyRun(ctx, t!, t!, t!.pid, o));
      },
    );
  }
}

/** Two pods on one Redis: subscribe on B, publish into A. Ours vs two Nchan nodes. */
export async function crossPod(ctx: Ctx): Promise<void> {
  const o = options(ctx);
  ctx.log(`cross-pod: ${o.subs} subscribers on pod B, ${o.rate} events/s into pod A, via Redis`);
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
          // The warm-up published into B; run the publish path of A once too.
          record(ctx, "cross-pod", label(kind), await steadyRun(ctx, b!, a!, b!.pid, o));
        },
      );
    } finally {
      await redis.stop();
    }
  }
}

/** HTTP/2 (h2c): the steady load with the streams multiplexed over a few sessions. */
export async function h2Steady(ctx: Ctx): Promise<void> {
  const o = { ...options(ctx), h2Sessions: ctx.quick ? 2 : 10 };
  ctx.log(`h2 steady: ${o.subs} streams over ${o.h2Sessions} HTTP/2 sessions × ${o.rate} events/s`);
  for (const kind of ctx.servers.filter(
    (k): k is ServerKind => k === "realtime" || k === "nchan",
  )) {
    await withTargets(
      ctx,
      async () => [await startServer(kind, { h2: true })],
      async ([t]) => {
        await warm(ctx, t!);
        record(ctx, "h2 steady", label(kind, "h2"), await steadyRun(ctx, t!, t!, t!.pid, o));
      },
    );
  }
}

/**
 * `--only=steady-chat`: the steady load with our service as an outside harness drives it —
 * `NODE_ENV=development` (log level `info`), events posted through the chat route as the
 * subscribers' user — next to the bench's production `/api/publish`, and the two crossed
 * (development + publish, production + chat) to tell the mode's share from the route's. Nchan
 * is measured once per run and recorded against each variant, so every row has its ratio.
 */
export async function steadyChat(ctx: Ctx): Promise<void> {
  const o = options(ctx);
  const variants: { name: string; development: boolean; chat: boolean }[] = [
    { name: "steady (publish, production)", development: false, chat: false },
    { name: "steady (chat, development)", development: true, chat: true },
    { name: "steady (chat, production)", development: false, chat: true },
    { name: "steady (publish, development)", development: true, chat: false },
  ];
  ctx.log(
    `steady-chat: ${o.subs} subscribers × ${o.rate} events/s, production /api/publish vs development chat route`,
  );
  if (ctx.servers.includes("realtime")) {
    for (const v of variants) {
      await withTargets(
        ctx,
        async () => [await startServer("realtime", { development: v.development, chat: v.chat })],
        async ([t]) => {
          await warm(ctx, t!);
          record(ctx, v.name, label("realtime"), await steadyRun(ctx, t!, t!, t!.pid, o));
        },
      );
    }
  }
  for (const kind of ctx.servers.filter((k) => k !== "realtime")) {
    await withTargets(
      ctx,
      async () => [await startServer(kind)],
      async ([t]) => {
        await warm(ctx, t!);
        const values = await steadyRun(ctx, t!, t!, t!.pid, o);
        for (const v of variants) record(ctx, v.name, label(kind), values);
      },
    );
  }
}
