/**
 * Reconnect storm (issue 20, target 2): 10k streams with cursors on pod X of three pods on one
 * Redis; a publisher posts a steady rate over 100 channels into pod A all along; X is
 * SIGKILLed; every client resumes on A and B (round robin) with `Last-Event-ID` — at once (the
 * worst case), and in a second run after the server's `retry:` hint as EventSource does.
 * Reported: time to 100 % resumed (caught up, as defined in `../storm.ts`), p99 of the events
 * published during the storm, loss and resets. Ours, and three Nchan nodes on Redis (Nchan
 * resumes from `Last-Event-ID` out of its Redis-stored message buffer, on any node).
 */
import { readFileSync } from "node:fs";
import { type Ctx, label, latencyValues, sleep, warm, withTargets } from "../context.ts";
import { clientFor } from "../http-client.ts";
import { cpuNs, processTree } from "../proc.ts";
import { summarise, summaryText } from "../profile.ts";
import { waitFor } from "../publish.ts";
import { type ServerKind, startPinnedRedis, startServer, type Target } from "../servers.ts";
import { nowUs } from "../sse-parser.ts";
import { resumeCurve, stormFigures, tcpExt } from "../storm.ts";

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
  const o = ctx.quick
    ? { subs: 300, channels: 10, rate: 50, beforeSeconds: 1, afterSeconds: 1 }
    : { subs: 10_000, channels: 100, rate: 200, beforeSeconds: 3, afterSeconds: 2 };
  // BENCH_STORM_RATE=0: nothing published, so no resume has anything to replay (ad hoc: the
  // cost of the resumes' accepts alone).
  const rate = process.env.BENCH_STORM_RATE;
  return rate === undefined ? o : { ...o, rate: Number(rate) };
}

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
    for (let i = 0; !this.#stopped && this.rate > 0 && i < this.rate * maxSeconds; i++) {
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

function listenOverflows(): number | null {
  try {
    return (
      tcpExt(readFileSync("/proc/net/netstat", "latin1"), ["ListenOverflows"]).ListenOverflows ??
      null
    );
  } catch {
    return null;
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
  /** CPU ns of the load generator's workers (the other core). */
  genNs: number;
  /** Replays running / waiting for a slot, summed over the surviving pods (ours only). */
  running: number | null;
  waiting: number | null;
}

/**
 * Samples CPU every `everyMs` and the replay gauges every `scrapeEvery`-th sample until
 * stopped. A scrape of /metrics is not free on a pod holding 5k streams (prom-client's process
 * metrics list /proc/self/fd and every active handle, the hub sums every stream's queue): ~15 ms
 * each, so it is done once a second, not at the CPU sampling rate.
 */
function sampler(
  pods: Target[],
  redis: number | undefined,
  generator: readonly number[],
  everyMs: number,
  scrapeEvery: number,
) {
  const podPids = pods.flatMap((p) => processTree(p.pid));
  const redisPids = redis === undefined ? [] : [redis];
  const samples: Sample[] = [];
  let stopped = false;
  let n = 0;
  const take = async (scrape: boolean) => {
    let running: number | null = null;
    let waiting: number | null = null;
    if (scrape && pods[0]?.kind === "realtime") {
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
      genNs: cpuNs(generator),
      running,
      waiting,
    });
  };
  const loop = (async () => {
    for (let guard = 0; !stopped && guard < 10_000; guard++) {
      await take(n++ % scrapeEvery === 0);
      await sleep(everyMs);
    }
  })();
  return {
    samples,
    async stop() {
      stopped = true;
      await loop;
      await take(false);
    },
  };
}

/** CPU % of one core over [fromUs, toUs] from the samples (nearest samples at both ends). */
function cpuPct(
  samples: Sample[],
  fromUs: number,
  toUs: number,
  key: "podsNs" | "redisNs" | "genNs",
) {
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
  // BENCH_STORM_PROFILE=<dir>: the surviving pods run under --cpu-prof; their self time from
  // the kill to the last catch-up is printed once they exited.
  const profileDir = kind === "realtime" ? process.env.BENCH_STORM_PROFILE : undefined;
  const tag = honourRetry ? "retry" : "at-once";
  let window: { fromUs: number; toUs: number } | undefined;
  try {
    const values = await withTargets(
      ctx,
      async () => {
        const started: Target[] = [];
        for (let i = 0; i < 3; i++) {
          const nodeFlags =
            profileDir && i < 2
              ? [
                  "--cpu-prof",
                  `--cpu-prof-dir=${profileDir}`,
                  `--cpu-prof-name=storm-${tag}-${"ab"[i]}.cpuprofile`,
                ]
              : undefined;
          started.push(
            await startServer(kind, {
              redisUrl: redis.url,
              env,
              nodeFlags,
              // Nchan with what ours has: history enough for the storm (ours keeps 10,000
              // events per channel; Nchan's default is 10) and our listen backlog.
              nchan: { bufferLength: 1_000, backlog: 4_096 },
            }),
          );
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

        const watch = sampler([podA, podB], redis.pid, ctx.gen.pids, 100, 10);
        await sleep(150);
        const overflowsBefore = listenOverflows();
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
        const overflowsAfter = listenOverflows();
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
        window = { fromUs: killUs, toUs: windowEnd };
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
          generatorCpuPct: cpuPct(watch.samples, killUs, windowEnd, "genNs"),
          replaysRunningMax: maxOf(watch.samples, killUs, windowEnd, "running"),
          replaysWaitingMax: maxOf(watch.samples, killUs, windowEnd, "waiting"),
          listenOverflows:
            overflowsBefore === null || overflowsAfter === null
              ? null
              : overflowsAfter - overflowsBefore,
        };
      },
    );
    if (profileDir && window) {
      for (const pod of "ab") {
        const path = `${profileDir}/storm-${tag}-${pod}.cpuprofile`;
        try {
          ctx.log(
            `  pod ${pod.toUpperCase()} profile, kill → last caught up:\n${summaryText(summarise(path, window, 25))}`,
          );
        } catch (error) {
          ctx.log(`  no profile ${path}: ${(error as Error).message}`);
        }
      }
    }
    return values;
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
  // BENCH_STORM_ONLY=at-once or =retry: one of the two runs (ad-hoc comparisons).
  const only = process.env.BENCH_STORM_ONLY;
  for (const honourRetry of [false, true]) {
    if (only && only !== (honourRetry ? "retry" : "at-once")) continue;
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
