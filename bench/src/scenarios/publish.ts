/**
 * Publish throughput: POSTs/s a pod accepts with a few subscribers (memory and Redis), and
 * the cost of history on the publish path (issue 4): the broker's atomic script with and
 * without the history append, and a bare PUBLISH.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type Ctx, label, sleep, warm, withTargets } from "../context.ts";
import { CpuMeter, processTree } from "../proc.ts";
import { summarise, summaryText } from "../profile.ts";
import { publishFor, waitFor } from "../publish.ts";
import { type ServerKind, startPinnedRedis, startServer, type Target } from "../servers.ts";

async function publishRun(ctx: Ctx, t: Target, seconds: number) {
  const subs = 10;
  const r = await ctx.gen.open({
    host: t.host,
    port: t.port,
    paths: [t.subPath(0)],
    headers: t.subHeaders,
    count: subs,
  });
  await ctx.gen.arm(1);
  const cpu = new CpuMeter(t.pid);
  cpu.start();
  const p = await publishFor(t, seconds, { window: 64, connections: 4 });
  const used = cpu.stop();
  if (p.failed > 0) ctx.log(`  publish failures by status: ${JSON.stringify(p.statuses)}`);
  await waitFor(
    async () => {
      const s = await ctx.gen.stats([p.sent]);
      return { done: s.missing === 0, value: s.events };
    },
    { idleMs: 3_000, maxMs: 30_000 },
  );
  const s = await ctx.gen.stats([p.sent]);
  return {
    /** The publishing, on the monotonic clock (µs): the profile's window. */
    window: { fromUs: p.startUs, toUs: p.endUs },
    streams: r.ok,
    publishesPerSec: Math.round(p.sent / ((p.endUs - p.startUs) / 1e6)),
    usPerPublish: p.sent > 0 ? Math.round(used.cpuNs / 1000 / p.sent) : null,
    failed: p.failed,
    loss: s.missing,
  };
}

export async function publishThroughput(ctx: Ctx): Promise<void> {
  const seconds = ctx.quick ? 2 : 5;
  ctx.log(
    `publish: POSTs/s at max rate (64 in flight, 4 connections), 10 subscribers, ${seconds} s`,
  );
  for (const kind of ctx.servers) {
    await withTargets(
      ctx,
      async () => [await startServer(kind)],
      async ([t]) => {
        await warm(ctx, t!, 10, 200);
        const { window: _, ...values } = await publishRun(ctx, t!, seconds);
        ctx.log(`  ${label(kind)}: ${JSON.stringify(values)}`);
        ctx.record({ scenario: "publish (memory)", server: label(kind), values, notes: [] });
      },
    );
  }
  for (const kind of ctx.servers.filter(
    (k): k is ServerKind => k === "realtime" || k === "nchan",
  )) {
    const redis = await startPinnedRedis();
    try {
      await withTargets(
        ctx,
        async () => [await startServer(kind, { redisUrl: redis.url })],
        async ([t]) => {
          await warm(ctx, t!, 10, 200);
          const { window: _, ...values } = await publishRun(ctx, t!, seconds);
          ctx.log(`  ${label(kind)} (Redis): ${JSON.stringify(values)}`);
          ctx.record({ scenario: "publish (Redis)", server: label(kind), values, notes: [] });
        },
      );
    } finally {
      await redis.stop();
    }
  }
}

/**
 * `--only=profile-publish`: our memory-mode publish run under `--cpu-prof`, summarised over
 * the measured window (self time by category and function). Returns the summary's text.
 */
export async function profilePublish(ctx: Ctx, dir: string): Promise<string> {
  const seconds = ctx.quick ? 2 : 5;
  const name = "publish.cpuprofile";
  ctx.log(`profile: realtime publish (memory), ${seconds} s under --cpu-prof`);
  let window: { fromUs: number; toUs: number } | undefined;
  await withTargets(
    ctx,
    async () => [
      await startServer("realtime", {
        nodeFlags: [
          "--cpu-prof",
          "--cpu-prof-interval=250",
          `--cpu-prof-dir=${dir}`,
          `--cpu-prof-name=${name}`,
        ],
      }),
    ],
    async ([t]) => {
      await warm(ctx, t!, 10, 200);
      const { window: measured, ...values } = await publishRun(ctx, t!, seconds);
      window = measured;
      ctx.log(`  profiled run: ${JSON.stringify(values)}`);
    },
  );
  // The window next to the profile, for a closer look at it than the summary.
  writeFileSync(`${dir}/publish.window.json`, JSON.stringify(window ?? null));
  return summaryText(summarise(`${dir}/${name}`, window, 30));
}

/** Issue 4: events/s through the broker's publish script with and without history. */
export async function historyCost(ctx: Ctx): Promise<void> {
  if (!ctx.servers.includes("realtime")) return;
  const seconds = ctx.quick ? 1 : 3;
  ctx.log(`history: broker publishes/s with and without the history append, ${seconds} s each`);
  const redis = await startPinnedRedis();
  const { RedisBroker } = await import("@realtime/redis");
  const { Redis } = await import("ioredis");
  const { PUBLISH_SCRIPT } = await import("../../../packages/redis/src/publish-script.ts");
  const broker = new RedisBroker({ url: redis.url, probeIntervalMs: 0 });
  const client = new Redis(redis.url);
  // The same script minus the history stream: no XADD, no EXPIRE on the stream key.
  const noHistory = PUBLISH_SCRIPT.replace(/^.*XADD.*$/m, "").replace(
    /^.*EXPIRE', KEYS\[2\].*$/m,
    "",
  );
  if (noHistory === PUBLISH_SCRIPT || noHistory.includes("XADD")) {
    ctx.log("  the publish script changed shape; skipping the without-history variant");
  }
  const redisPids = () =>
    processTree(process.pid).filter((pid) => {
      try {
        return readComm(pid) === "redis-server";
      } catch {
        return false;
      }
    });
  const data = JSON.stringify({
    type: "bench",
    channel: "channel:h0",
    timestamp: new Date().toISOString(),
    m: "@1@1@",
  });
  const variants: { name: string; run: () => Promise<unknown> }[] = [
    { name: "with history (broker script)", run: () => broker.publish("channel:h0", data) },
    {
      name: "without history (script minus XADD)",
      run: () =>
        client.eval(
          noHistory,
          3,
          "bh:meta:{h1}",
          "bh:history:{h1}",
          "bh:{h1}",
          "publish",
          "e1",
          data,
          10000,
          300,
          86400,
          "PUBLISH",
        ),
    },
    { name: "bare PUBLISH", run: () => client.publish("bh:{h2}", data) },
  ];
  try {
    for (const variant of variants) {
      for (let i = 0; i < 200; i++) await variant.run(); // warm
      const cpuPids = redisPids();
      const meter = new CpuMeter(cpuPids[0] ?? process.pid);
      meter.start();
      const stopAt = performance.now() + seconds * 1000;
      let done = 0;
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          for (let guard = 0; guard < 10_000_000 && performance.now() < stopAt; guard++) {
            await variant.run();
            done++;
          }
        }),
      );
      const used = meter.stop();
      const values = {
        publishesPerSec: Math.round(done / (used.wallNs / 1e9)),
        redisUsPerPublish: Math.round((used.cpuNs / 1000 / done) * 10) / 10,
        redisCpuPct: Math.round((used.cpuNs / used.wallNs) * 1000) / 10,
      };
      ctx.log(`  ${variant.name}: ${JSON.stringify(values)}`);
      ctx.record({ scenario: "history cost (Redis)", server: variant.name, values, notes: [] });
      await sleep(200);
    }
  } finally {
    client.disconnect();
    await broker.close();
    await redis.stop();
  }
}

function readComm(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
}
