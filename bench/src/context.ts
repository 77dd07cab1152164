/** What every scenario gets, and the helpers they share. */
import type { Generator } from "./generator.ts";
import { freshAddress } from "./generator.ts";
import type { Histogram } from "./histogram.ts";
import { processTree, rssBytes } from "./proc.ts";
import { publishBurst, waitFor } from "./publish.ts";
import { LABELS, type ServerKind, type Target } from "./servers.ts";

export interface Measurement {
  scenario: string;
  /** Column: the server (and variant) measured. */
  server: string;
  values: Record<string, number | null>;
  notes: string[];
}

export interface Ctx {
  readonly quick: boolean;
  readonly servers: readonly ServerKind[];
  readonly gen: Generator;
  log(line: string): void;
  record(m: Measurement): void;
  /** Directory for CPU profiles, when `--profile` was given. */
  readonly profileDir: string | undefined;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Median of `n` RSS samples of the process tree, `gapMs` apart. */
export async function sampleRss(pid: number, n = 3, gapMs = 300): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(gapMs);
    samples.push(rssBytes(processTree(pid)));
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(n / 2)] as number;
}

/** Runs the hot paths of a fresh server once (JIT, pools) before anything is measured. */
export async function warm(ctx: Ctx, target: Target, subs = 100, events = 100): Promise<void> {
  const r = await ctx.gen.open({
    host: target.host,
    port: target.port,
    paths: [target.subPath(0)],
    headers: target.subHeaders,
    count: subs,
    h2Sessions: target.h2 ? 1 : undefined,
  });
  if (r.ok !== subs) ctx.log(`  warm-up: only ${r.ok}/${subs} streams (${r.firstError})`);
  await ctx.gen.arm(1);
  await publishBurst(target, 1, events);
  await waitFor(
    async () => {
      const s = await ctx.gen.stats([events]);
      return { done: s.events >= r.ok * events, value: s.events };
    },
    { idleMs: 2_000, maxMs: 20_000 },
  );
  await ctx.gen.closeAll();
  freshAddress();
  await sleep(300);
}

export function latencyValues(h: Histogram): Record<string, number | null> {
  const ms = (us: number) => (Number.isFinite(us) ? Math.round(us / 10) / 100 : null);
  return {
    p50Ms: ms(h.percentile(0.5)),
    p99Ms: ms(h.percentile(0.99)),
    maxMs: h.count > 0 ? ms(h.maxUs) : null,
  };
}

export function label(kind: ServerKind, variant?: string): string {
  return variant ? `${LABELS[kind]} ${variant}` : LABELS[kind];
}

/** Starts a target, runs `body`, always closes the generator's streams and stops the target. */
export async function withTargets<T>(
  ctx: Ctx,
  start: () => Promise<Target[]>,
  body: (targets: Target[]) => Promise<T>,
): Promise<T | undefined> {
  let targets: Target[] = [];
  try {
    targets = await start();
    return await body(targets);
  } catch (error) {
    ctx.log(`  failed: ${(error as Error).stack ?? error}`);
    return undefined;
  } finally {
    await ctx.gen.closeAll().catch(() => {});
    freshAddress();
    for (const t of targets) await t.stop().catch(() => {});
  }
}
