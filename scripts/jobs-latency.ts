/**
 * Benchmark (not a test): SSE fan-out latency on one embedded-mode pod, idle vs while four
 * jobs render in its worker threads.
 *
 *     node scripts/jobs-latency.ts [--clients 50] [--rate 20]
 *         [--seconds 6] [--concurrency 1,4]
 *
 * For each render-thread count, it starts a pod process (`main.ts`, embedded mode), opens
 * `--clients` SSE streams on `channel:bench`, and posts a chat message `--rate` times a second
 * carrying its send time. Latency = receive time on each stream − send time (same machine
 * clock), so it covers the POST, the broker and the hub's fan-out to every stream. It is
 * measured for `--seconds` idle, then again while four jobs render (checked to be running
 * throughout); `--rounds` alternations of the two phases spread background noise over both.
 * The p50/p95/p99 ratios are printed, with the load average to show how quiet the machine was.
 */
import http from "node:http";
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { launchPod, type Pod } from "@realtime/testkit/pods";

const SECRET = "bench-secret-bench-secret-bench-secret-01";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "50" },
    rate: { type: "string", default: "20" },
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    concurrency: { type: "string", default: "1,4" },
  },
});
const CLIENTS = Number(values.clients);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONCURRENCIES = values.concurrency.split(",").map(Number);

/** Wall-clock ms with sub-ms precision, comparable across processes on one machine. */
const now = () => performance.timeOrigin + performance.now();

function startPod(concurrency: number): Promise<Pod> {
  return launchPod(
    {
      NODE_ENV: "test",
      LOG_LEVEL: "warn",
      HOST: "127.0.0.1",
      JWT_SECRET: SECRET,
      SHUTDOWN_DRAIN_MS: "100",
      JOBS_CONCURRENCY: String(concurrency),
      JOBS_MAX_PER_USER: "4",
      // Long enough that four jobs still render when the measurement ends.
      JOBS_FRAMES: "600",
      JOBS_FRAME_SIZE: "480",
    },
    { stdio: "inherit" },
  );
}

async function login(pod: Pod, name: string): Promise<string> {
  const response = await fetch(`${pod.url}/api/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  return ((await response.json()) as { token: string }).token;
}

/** Opens the SSE streams; every chat event's latency is handed to `record`. */
async function openStreams(pod: Pod, token: string, record: (phase: string, ms: number) => void) {
  const requests: http.ClientRequest[] = [];
  await Promise.all(
    Array.from(
      { length: CLIENTS },
      () =>
        new Promise<void>((resolve, reject) => {
          const request = http.get(`${pod.url}/api/events?channel=channel:bench`, {
            headers: { accept: "text/event-stream", authorization: `Bearer ${token}` },
          });
          requests.push(request);
          request.once("error", reject);
          request.once("response", (response) => {
            response.setEncoding("utf8");
            response.on("data", (chunk: string) => {
              const at = now();
              for (const m of chunk.matchAll(/phase=(\w+) sentAt=([0-9.]+)/g)) {
                record(m[1] ?? "", at - Number(m[2]));
              }
            });
            resolve();
          });
        }),
    ),
  );
  return () => {
    for (const request of requests) request.destroy();
  };
}

/** Posts `RATE` messages a second for `SECONDS`, tagged with `phase`. */
async function publish(pod: Pod, token: string, phase: string): Promise<void> {
  const interval = 1000 / RATE;
  const start = now();
  const posts: Promise<unknown>[] = [];
  for (let i = 0; i < RATE * SECONDS; i++) {
    const wait = start + i * interval - now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    posts.push(
      fetch(`${pod.url}/api/chat/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ channel: "bench", content: `phase=${phase} sentAt=${now()}` }),
      }),
    );
  }
  await Promise.all(posts);
  // Let the last events arrive.
  await new Promise((resolve) => setTimeout(resolve, 300));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function summary(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

async function jobStates(pod: Pod, token: string, ids: string[]): Promise<string[]> {
  return Promise.all(
    ids.map(async (id) => {
      const r = await fetch(`${pod.url}/api/jobs/${id}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const view = (await r.json()) as { status: string; progress: number };
      return `${view.status}@${view.progress}%`;
    }),
  );
}

async function startJobs(pod: Pod, token: string, round: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const response = await fetch(`${pod.url}/api/generate/video`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ prompt: `benchmark job ${round}.${i}`, aspectRatio: "16:9" }),
    });
    ids.push(((await response.json()) as { jobId: string }).jobId);
  }
  return ids;
}

async function run(concurrency: number) {
  const pod = await startPod(concurrency);
  try {
    const token = await login(pod, "Bench");
    const samples = new Map<string, number[]>();
    const record = (phase: string, ms: number) => {
      const list = samples.get(phase) ?? [];
      list.push(ms);
      samples.set(phase, list);
    };
    const close = await openStreams(pod, token, record);
    await publish(pod, token, "warmup");
    const after: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await publish(pod, token, "idle");
      const ids = await startJobs(pod, token, round);
      // Measure once the render threads are busy (first progress).
      for (;;) {
        const states = await jobStates(pod, token, ids);
        if (states.filter((s) => /running@[1-9]/.test(s)).length >= Math.min(4, concurrency)) {
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await publish(pod, token, "busy");
      after.push(...(await jobStates(pod, token, ids)));
      for (const id of ids) {
        await fetch(`${pod.url}/api/jobs/${id}`, {
          method: "DELETE",
          headers: { authorization: `Bearer ${token}` },
        });
      }
    }
    close();
    return {
      idle: summary(samples.get("idle") ?? []),
      busy: summary(samples.get("busy") ?? []),
      jobsAfter: after,
    };
  } finally {
    await pod.kill("SIGTERM");
  }
}

const fmt = (n: number) => n.toFixed(2).padStart(7);
console.log(
  `SSE fan-out latency, embedded pod: ${CLIENTS} streams, ${RATE} msg/s for ${SECONDS} s per phase, ` +
    `${ROUNDS} rounds, ${availableParallelism()} CPUs; four 600-frame 480x270 jobs in the busy phase`,
);
for (const concurrency of CONCURRENCIES) {
  const { idle, busy, jobsAfter } = await run(concurrency);
  console.log(
    `\nrender threads: ${concurrency}   (jobs at the end of the busy phase: ${jobsAfter.join(", ")})`,
  );
  console.log("phase  samples     p50     p95     p99     max  (ms)");
  for (const [name, s] of [
    ["idle", idle],
    ["busy", busy],
  ] as const) {
    console.log(
      `${name.padEnd(6)} ${String(s.n).padStart(7)} ${fmt(s.p50)} ${fmt(s.p95)} ${fmt(s.p99)} ${fmt(s.max)}`,
    );
  }
  console.log(`load average (1 min) now: ${loadavg()[0]?.toFixed(2)}`);
  console.log(
    `ratio busy/idle: p50 ${(busy.p50 / idle.p50).toFixed(2)}x, p95 ${(busy.p95 / idle.p95).toFixed(2)}x, p99 ${(busy.p99 / idle.p99).toFixed(2)}x`,
  );
}
process.exit(0);
