/**
 * Ad-hoc: the pod CPU of a stream open and of a resume on a Redis pod, without the rest of the
 * bench. One Redis, one pod (production settings, limits off as in the bench), 100 channels.
 * Phase "open": N fresh streams; phase "resume": N streams with `Last-Event-ID` 5 events back
 * (each must get exactly those 5, in order). Reports pod CPU µs per stream (schedstat of every
 * thread), wall time, the Redis scripts run, and each phase's window on the monotonic clock
 * (which `--cpu-prof` timestamps use). `OPEN_COST_PROF=<dir>` runs the pod under --cpu-prof.
 * Streams are spread over the channels one after another, so few of one channel open at the
 * same moment: it measures the per-stream cost, not what streams of one channel share.
 *
 *   flock /tmp/bench.lock node_modules/.bin/node bench/src/open-cost.ts [streams=4000] [rounds=2]
 */
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { launchPod } from "@realtime/testkit/pods";
import { redisCli, startRedis } from "@realtime/testkit/redis";
import { publisherToken, userToken } from "./jwt.ts";
import { BENCH_POD_ENV } from "./servers.ts";

const N = Number(process.argv[2] ?? 4000);
const ROUNDS = Number(process.argv[3] ?? 2);
const CHANNELS = 100;
const INFLIGHT = Number(process.env.OPEN_COST_INFLIGHT ?? 1000);

function cpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [run] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ");
      total += Number(run);
    } catch {}
  }
  return total;
}

const redis = await startRedis();
const prof = process.env.OPEN_COST_PROF;
const pod = await launchPod(
  {
    NODE_ENV: "production",
    LOG_LEVEL: "warn",
    ...BENCH_POD_ENV,
    REDIS_URL: redis.url,
    ...(process.env.OPEN_COST_MAX_REPLAYS
      ? { MAX_REPLAYS: process.env.OPEN_COST_MAX_REPLAYS }
      : {}),
  },
  {
    inheritEnv: true,
    nodeFlags: prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [],
  },
);
const sub = userToken("u_bench");
const pubToken = publisherToken();
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function publish(channel: number, i: number): Promise<void> {
  const body = `{"channel":"channel:b${channel}","event":{"type":"bench","m":"e${i}"}}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${pod.url}/api/publish`,
      {
        method: "POST",
        agent,
        headers: { authorization: `Bearer ${pubToken}`, "content-type": "application/json" },
      },
      (res) => {
        res.resume();
        res.on("end", () =>
          (res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Opens a raw stream; resolves with the socket once `done(text)` holds for what it received. */
function open(
  channel: number,
  lastEventId: string | undefined,
  done: (text: string) => boolean,
  onText?: (text: string) => void,
): Promise<{ socket: net.Socket; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port: pod.port });
    let text = "";
    socket.setEncoding("utf8");
    socket.on("connect", () => {
      socket.write(
        `GET /api/events?channel=channel:b${channel} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${sub}\r\n${
          lastEventId ? `last-event-id: ${lastEventId}\r\n` : ""
        }\r\n`,
      );
    });
    socket.on("data", (chunk: string) => {
      text += chunk;
      onText?.(text);
      if (done(text)) {
        done = () => false;
        resolve({ socket, text });
      }
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`closed: ${text.slice(0, 300)}`)));
  });
}

// History: 10 events per channel; the cursor of the 5th is where the resumes start.
const cursors: string[] = [];
for (let c = 0; c < CHANNELS; c++) {
  let all = "";
  let settle: (() => void) | undefined;
  const probe = await open(
    c,
    undefined,
    (t) => t.includes("event: ready"),
    (t) => {
      all = t;
      if ((t.match(/"m":"e\d"/g) ?? []).length >= 10) settle?.();
    },
  );
  const got = new Promise<void>((resolve) => {
    settle = resolve;
  });
  for (let i = 0; i < 10; i++) await publish(c, i);
  await got;
  const e4 = /id: (\S+)\ndata: [^\n]*"m":"e4"/.exec(all);
  if (!e4) throw new Error(`no e4 in ${all}`);
  cursors[c] = e4[1] as string;
  probe.socket.removeAllListeners("close");
  probe.socket.destroy();
}

async function phase(name: string, resume: boolean) {
  const calls = async () =>
    Number(
      /cmdstat_evalsha:calls=(\d+)/.exec(await redisCli(redis.port, "info", "commandstats"))?.[1] ??
        0,
    );
  const scripts = await calls();
  const before = cpuNs(pod.pid);
  const t0 = performance.now();
  const fromUs = process.hrtime.bigint() / 1000n;
  const sockets: net.Socket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const i = next++;
      const c = i % CHANNELS;
      const { socket, text } = await open(
        c,
        resume ? cursors[c] : undefined,
        resume ? (t) => t.includes(`"m":"e9"`) : (t) => t.includes("event: ready"),
      );
      if (resume) {
        const ms = [...text.matchAll(/"m":"e(\d)"/g)].map((m) => m[1]).join("");
        if (ms !== "56789") throw new Error(`stream ${i} got ${ms}`);
      }
      sockets.push(socket);
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const wall = performance.now() - t0;
  const cpu = cpuNs(pod.pid) - before;
  console.log(
    `${name}: ${N} streams in ${wall.toFixed(0)} ms, pod CPU ${(cpu / 1e6).toFixed(0)} ms = ${(cpu / 1e3 / N).toFixed(0)} µs/stream (window ${fromUs} ${process.hrtime.bigint() / 1000n})`,
  );
  console.log(`  ${(await calls()) - scripts} Redis scripts`);
  for (const s of sockets) {
    s.removeAllListeners("close");
    s.resetAndDestroy();
  }
  // Let the pod take them down before the next phase.
  await new Promise((r) => setTimeout(r, 1500));
}

for (let r = 0; r < ROUNDS; r++) {
  await phase("open", false);
  await phase("resume", true);
}
agent.destroy();
await pod.kill("SIGTERM");
await redis.stop();
