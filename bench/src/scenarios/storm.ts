/**
 * Reconnect storm (issue 20, target 2): 10k streams with cursors on pod X of three pods on one
 * Redis; a publisher posts a steady rate over 100 channels into pod A all along; X is
 * SIGKILLed; every client resumes on A and B (round robin) with `Last-Event-ID` — at once (the
 * worst case), and in a second run after the server's `retry:` hint as EventSource does.
 * Reported: time to 100 % resumed (caught up, as defined in `../storm.ts`), p99 of the events
 * published during the storm, loss and resets. Ours, and two… three Nchan nodes on Redis
 * (Nchan resumes from `Last-Event-ID` out of its Redis-stored message buffer).
 */
import { execFileSync } from "node:child_process";
import { type Ctx, label, latencyValues, sleep, warm, withTargets } from "../context.ts";
import { clientFor } from "../http-client.ts";
import { cpuNs, processTree } from "../proc.ts";
import { waitFor } from "../publish.ts";
import { type ServerKind, startPinnedRedis, startServer, type Target } from "../servers.ts";
import { nowUs } from "../sse-parser.ts";
import { resumeCurve, stormFigures } from "../storm.ts";

interface StormOptions {
  subs: number;
  channels: number;
  /** Events/s over all channels, into pod A, for the whole run. */
  rate: number;
  /** Publishing before the kill, s (cursors move past the `ready` id). */
  beforeSeconds: number;
  /** Publishing after the last stream resumed, s. */
  afterSeconds: number;
}

function options(ctx: Ctx): StormOptions {
  return ctx.quick
    ? { subs: 300, channels: 10, rate: 50, beforeSeconds: 1, afterSeconds: 1 }
    : { subs: 10_000, channels: 100, rate: 200, beforeSeconds: 3, afterSeconds: 2 };
}

/** The goal of issue 20: every stream resumed within 3 s of the kill. */
export const STORM_GOAL_MS = 3_000;

/**
 * Publishes `rate` events/s round robin over `channels` channels (event `i` goes to channel
 * `i % channels` as its sequence number `⌊i / channels⌋ + 1`), each at its scheduled moment,
 * until stopped; records when each publish was acknowledged.
 */
class RatePublisher {
  /** `acks[channel][seq]`: µs the 2xx arrived, 0 until then (or when it failed). */
  readonly acks: number[][];
  /** Acknowledged publishes per channel. */
  readonly acked: number[];
  failed = 0;
  #stopped = false;
  #done: Promise<void> = Promise.resolve();

  readonly target: Target;
  readonly channels: number;
  readonly rate: number;

  constructor(target: Target, channels: number, rate: number) {
    this.target = target;
    this.channels = channels;
    this.rate = rate;
    this.acks = Array.from({ length: channels }, () => [0]);
    this.acked = new Array<number>(channels).fill(0);
  }

  start(maxSeconds: number): void {
    this.#done = this.#run(maxSeconds);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }

  async #run(maxSeconds: number): Promise<void> {
    const client = clientFor(this.target, 1);
    const intervalMs = 1000 / this.rate;
    const start = performance.now();
    const pending = new Set<Promise<void>>();
    for (let i = 0; !this.#stopped && i < this.rate * maxSeconds; i++) {
      const wait = start + i * intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
      const channel = i % this.channels;
      const seq = Math.floor(i / this.channels) + 1;
      const acks = this.acks[channel] as number[];
      acks[seq] = 0;
      const p = client.send(this.target.publish(channel, seq, nowUs())).then(
        (status) => {
          if (status >= 200 && status < 300) {
            acks[seq] = nowUs();
            this.acked[channel] = (this.acked[channel] as number) + 1;
          } else this.failed++;
        },
        () => {
          this.failed++;
        },
      );
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.race([Promise.all(pending), sleep(10_000)]);
    client.close();
  }
}

/** The pid of the redis-server listening on `port` (its `INFO server`), if it answers. */
function redisPid(port: number): number | undefined {
  try {
    const info = execFileSync("redis-cli", ["-p", String(port), "INFO", "server"], {
      encoding: "utf8",
      timeout: 5_000,
    });
    const pid = /process_id:(\d+)/.exec(info)?.[1];
    return pid === undefined ? undefined : Number(pid);
  } catch {
    return undefined;
  }
}

/** `name value` of a Prometheus gauge in `text`, or null. */
function gauge(text: string, name: string): number | null {
  const m = new RegExp(`^${name} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
}

interface Sample {
  us: number;
  /** CPU ns of the surviving pods' process trees, and of Redis. */
  podsNs: number;
  redisNs: number;
  /** Replays running / waiting for a slot, summed over the surviving pods (ours only). */
  running: number | null;
  waiting: number | null;
}

/** Samples CPU and the replay gauges every `everyMs` until stopped. */
function sampler(pods: Target[], redis: number | undefined, everyMs: number) {
  const podPids = pods.flatMap((p) => processTree(p.pid));
  const redisPids = redis === undefined ? [] : [redis];
  const samples: Sample[] = [];
  let stopped = false;
  const take = async () => {
    let running: number | null = null;
    let waiting: number | null = null;
    if (pods[0]?.kind === "realtime") {
      const texts = await Promise.all(
        pods.map((p) =>
          fetch(`http://${p.host}:${p.port}/metrics`, { signal: AbortSignal.timeout(2_000) })
            .then((r) => r.text())
            .catch(() => ""),
        ),
      );
      for (const t of texts) {
        const r = gauge(t, "realtime_replays_running");
        const w = gauge(t, "realtime_replays_waiting");
        if (r !== null) running = (running ?? 0) + r;
        if (w !== null) waiting = (waiting ?? 0) + w;
      }
    }
    samples.push({
      us: nowUs(),
      podsNs: cpuNs(podPids),
      redisNs: cpuNs(redisPids),
      running,
      waiting,
    });
  };
  const loop = (async () => {
    for (let guard = 0; !stopped && guard < 10_000; guard++) {
      await take();
      await sleep(everyMs);
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
      await take();
    },
  };
}

/** CPU % of one core over [fromUs, toUs] from the samples (nearest samples at both ends). */
function cpuPct(samples: Sample[], fromUs: number, toUs: number, key: "podsNs" | "redisNs") {
  const first = samples.find((s) => s.us >= fromUs) ?? samples[0];
  const last = samples.find((s) => s.us >= toUs) ?? samples[samples.length - 1];
  if (!first || !last || last.us <= first.us) return null;
  return Math.round(((last[key] - first[key]) / 1000 / (last.us - first.us)) * 1000) / 10;
}

function maxOf(samples: Sample[], fromUs: number, toUs: number, key: "running" | "waiting") {
  let max: number | null = null;
  for (const s of samples) {
    if (s.us < fromUs || s.us > toUs + 200_000) continue;
    const v = s[key];
    if (v !== null) max = Math.max(max ?? 0, v);
  }
  return max;
}

async function stormRun(
  ctx: Ctx,
  kind: ServerKind,
  o: StormOptions,
  honourRetry: boolean,
  env: Record<string, string>,
): Promise<Record<string, number | null> | undefined> {
  const redis = await startPinnedRedis();
  try {
    return await withTargets(
      ctx,
      async () => {
        const started: Target[] = [];
        for (let i = 0; i < 3; i++) {
          started.push(await startServer(kind, { redisUrl: redis.url, env }));
        }
        return started;
      },
      async ([a, b, x]) => {
        const [podA, podB, podX] = [a as Target, b as Target, x as Target];
        // Pods in production are warm: run each one's stream and publish paths once.
        for (const t of [podA, podB, podX]) await warm(ctx, t, 50, 50);
        const opened = await ctx.gen.open({
          host: podX.host,
          port: podX.port,
          paths: Array.from({ length: o.channels }, (_, c) => podX.subPath(c)),
          headers: podX.subHeaders,
          count: o.subs,
          concurrency: 256,
          storm: {
            targets: [podA, podB].map((t) => ({ host: t.host, port: t.port })),
            honourRetry,
          },
        });
        if (opened.ok !== o.subs)
          ctx.log(`  only ${opened.ok}/${o.subs} streams (${opened.firstError})`);
        await sleep(500);
        const publisher = new RatePublisher(podA, o.channels, o.rate);
        publisher.start(90);
        await sleep(o.beforeSeconds * 1000);

        const watch = sampler([podA, podB], redisPid(redis.port), 100);
        await sleep(150);
        const killUs = nowUs();
        await ctx.gen.stormArm(killUs);
        await podX.kill();
        const killedMs = (nowUs() - killUs) / 1000;
        await waitFor(
          async () => {
            const p = await ctx.gen.stormProgress();
            return { done: p.resumed + p.gaveUp >= opened.ok, value: p.resumed };
          },
          { idleMs: 15_000, maxMs: 60_000, pollMs: 100 },
        );
        const headersDoneUs = nowUs();
        await sleep(o.afterSeconds * 1000);
        await publisher.stop();
        await watch.stop();
        const expected = publisher.acked;
        await waitFor(
          async () => {
            const s = await ctx.gen.stats(expected);
            return { done: s.missing === 0, value: s.events };
          },
          { idleMs: 5_000, maxMs: 20_000 },
        );
        const end = await ctx.gen.stats(expected);
        const st = await ctx.gen.stormStats(publisher.acks);
        const outcomes = st.outcomes.map(([dropUs, headUs, caughtUpUs]) => ({
          dropUs,
          headUs,
          caughtUpUs,
        }));
        const fig = stormFigures(outcomes, killUs);
        const windowEnd = fig.endUs ?? headersDoneUs;
        const latency = await ctx.gen.stormLatency(killUs, windowEnd);
        const curve = resumeCurve(outcomes, killUs, 250, 24);
        ctx.log(
          `  caught up by 0.25 s steps: ${curve.join(" ")}; SIGKILL took ${killedMs.toFixed(0)} ms; ${st.attempts} resume attempts (${st.failedAttempts} failed${st.firstFailure ? `: ${st.firstFailure}` : ""})`,
        );
        const lat = latencyValues(latency);
        return {
          streams: opened.ok,
          resumed: fig.resumed,
          caughtUp: fig.caughtUp,
          allResumedMs: fig.allCaughtUpMs,
          allHeadersMs: fig.allHeadersMs,
          p50ResumedMs: fig.p50CaughtUpMs,
          p99ResumedMs: fig.p99CaughtUpMs,
          lastDropMs: fig.lastDropMs,
          stormEvents: latency.count,
          p50Ms: lat.p50Ms ?? null,
          p99Ms: lat.p99Ms ?? null,
          maxMs: lat.maxMs ?? null,
          loss: end.missing,
          dups: end.dups,
          reordered: end.reordered,
          resets: st.resets,
          gaveUp: st.gaveUp,
          failedAttempts: st.failedAttempts,
          publishFailed: publisher.failed,
          podsCpuPct: cpuPct(watch.samples, killUs, windowEnd, "podsNs"),
          redisCpuPct: cpuPct(watch.samples, killUs, windowEnd, "redisNs"),
          replaysRunningMax: maxOf(watch.samples, killUs, windowEnd, "running"),
          replaysWaitingMax: maxOf(watch.samples, killUs, windowEnd, "waiting"),
        };
      },
    );
  } finally {
    await redis.stop();
  }
}

/** Extra pod environment for ad-hoc runs: `BENCH_STORM_ENV="MAX_REPLAYS=256,FOO=1"`. */
function extraEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.BENCH_STORM_ENV ?? "").split(",")) {
    const at = pair.indexOf("=");
    if (at > 0) out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

export async function reconnectStorm(ctx: Ctx): Promise<void> {
  const o = options(ctx);
  const env = extraEnv();
  ctx.log(
    `reconnect storm: ${o.subs} streams on ${o.channels} channels on pod X of 3 on one Redis, ${o.rate} events/s into pod A; SIGKILL X; resume on A and B with Last-Event-ID${Object.keys(env).length > 0 ? ` (pod env ${JSON.stringify(env)})` : ""}`,
  );
  const kinds = ctx.servers.filter((k): k is ServerKind => k === "realtime" || k === "nchan");
  for (const honourRetry of [false, true]) {
    const scenario = honourRetry ? "reconnect storm, retry: honoured" : "reconnect storm";
    for (const kind of kinds) {
      // Nchan sends no `retry:` hint: its clients would wait the browser's default (~3 s).
      if (honourRetry && kind !== "realtime") continue;
      const values = await stormRun(ctx, kind, o, honourRetry, kind === "realtime" ? env : {});
      if (!values) continue;
      const server = label(kind);
      ctx.log(`  ${scenario}, ${server}: ${JSON.stringify(values)}`);
      ctx.record({ scenario, server, values, notes: [] });
    }
  }
}
