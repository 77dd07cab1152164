/**
 * The servers under test, each started pinned to the server core and stopped after:
 * our service (1 or 2 pods, memory or Redis, HTTP/1.1 or h2c), Nchan (1 or 2 nodes, memory or
 * Redis), the plain node:http hub and the better-sse hub. They all take the same published
 * JSON event (ours wraps it in its envelope; the peers get an envelope of the same shape and
 * size), so every stream carries comparable bytes.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { launchPod } from "@realtime/testkit/pods";
import { PIN } from "./generator.ts";
import type { Request } from "./http-client.ts";
import { BENCH_SECRET, publisherToken, userToken } from "./jwt.ts";
import { NGINX, testNchanConfig, writeNchanConfig } from "./nchan.ts";
import { marker } from "./sse-parser.ts";

/** The core servers (and their Redis) run on. */
export const SERVER_CPU = "0";
const HOST = "127.0.0.1";
const PEERS = fileURLToPath(new URL("./peers/", import.meta.url));

export type ServerKind = "realtime" | "nchan" | "node" | "better-sse";

export const LABELS: Record<ServerKind, string> = {
  realtime: "realtime",
  nchan: "Nchan",
  node: "node:http",
  "better-sse": "better-sse",
};

export interface Target {
  readonly kind: ServerKind;
  readonly host: string;
  readonly port: number;
  /** Root pid of the server (nginx master, or node). */
  readonly pid: number;
  readonly h2: boolean;
  /** Path of the SSE stream for channel number `channel`. */
  subPath(channel: number): string;
  readonly subHeaders: Record<string, string>;
  /** The POST that publishes event `seq` (marker time `timeUs`) on channel number `channel`. */
  publish(channel: number, seq: number, timeUs: number): Request;
  stop(): Promise<void>;
  /** SIGKILL of the whole server (its process group), resolved once it exited. */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** Redis URL: our pods use the Redis broker, Nchan nodes use Redis storage. */
  redisUrl?: string;
  h2?: boolean;
  /** Our MAX_CONNECTIONS. */
  maxConnections?: number;
  /** Extra node flags for our service (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Extra environment for our service. */
  env?: Record<string, string>;
  /**
   * Ours only: `NODE_ENV=development` with the service's default log level (`info`), as a
   * developer or an outside harness runs it, instead of production at `warn`. Default: the
   * environment's `BENCH_DEVELOPMENT=1` (any scenario, e.g. idle memory in development).
   */
  development?: boolean;
  /**
   * Ours only: publish through the chat route (`POST /api/chat/messages`, the subscribers'
   * user token) instead of `POST /api/publish` with a service token.
   */
  chat?: boolean;
  /** Nchan only: messages kept per channel, and the listen backlog. */
  nchan?: { bufferLength?: number; backlog?: number };
}

const runDirs = new Set<string>();
const children = new Set<ChildProcess>();

process.once("exit", () => {
  // Each server is its own process group (nginx master + workers): take the whole group.
  for (const child of children) killGroup(child, "SIGKILL");
  for (const dir of runDirs) rmSync(dir, { recursive: true, force: true });
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function runDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `rt-bench-${prefix}-`));
  runDirs.add(dir);
  return dir;
}

/** Spawns `command args…` under `taskset -c <SERVER_CPU>`, output to `dir/out.log`. */
export function spawnPinned(
  command: string,
  args: string[],
  dir: string,
  env: Record<string, string>,
): ChildProcess {
  const log = openSync(join(dir, "out.log"), "a");
  const [file, argv] = PIN
    ? ["/usr/bin/taskset", ["-c", SERVER_CPU, command, ...args]]
    : [command, args];
  const child = spawn(file, argv, {
    env: { ...process.env, ...env },
    stdio: ["ignore", log, log],
    cwd: dir,
    detached: true,
  });
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs = 10_000) {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
  // Whatever the server left behind in its group (nginx workers) goes too.
  killGroup(child, "SIGKILL");
}

function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-20).join("\n");
  } catch {
    return "";
  }
}

/** The JSON a peer publishes: the same shape and size as our envelope. */
function peerBody(channel: number, seq: number, timeUs: number): string {
  return JSON.stringify({
    type: "bench",
    channel: `channel:b${channel}`,
    timestamp: new Date().toISOString(),
    m: marker(seq, timeUs),
  });
}

/**
 * The `NODE_OPTIONS` the service ships with (the Dockerfile's runtime `ENV`, `npm start`): V8's
 * young generation capped at 16 MB per semi-space. Uncapped, it grows past 100 MB during a burst
 * of accepts and stays there, ~7 KB of every idle stream's ~11 KB at 10k streams; capped, fan-out,
 * publish and steady delivery cost the same (bench/README.md, Idle memory).
 * `e2e/image/production-tree.test.ts` checks the three agree.
 */
export const SHIPPED_NODE_OPTIONS = "--max-semi-space-size=16";

/**
 * The `NODE_OPTIONS` our pods start with: `BENCH_NODE_OPTIONS` when set (empty: none, V8's
 * defaults), else the shipped ones, so `npm run bench` measures the service as it ships. This
 * process' own `NODE_OPTIONS`, which the pods inherit, comes after them: a flag given there wins,
 * as an operator's does over the shipped default.
 */
export function podNodeOptions(): string {
  const pods = process.env.BENCH_NODE_OPTIONS ?? SHIPPED_NODE_OPTIONS;
  return [pods, process.env.NODE_OPTIONS ?? ""].filter((o) => o.trim() !== "").join(" ");
}

/**
 * The environment every bench pod of ours shares (the bench's own scenarios and the ad hoc
 * harnesses): the bench's token secret, a short drain, and the abuse limits off — every bench
 * subscriber is one user (so presence sends one event per channel, not one per stream), and
 * bursts go far past the per-channel broadcast budget. The per-user share of replay slots cannot
 * be 0: as high as the pod's own bound, so the one bench user's resumes are bounded by
 * MAX_REPLAYS only, as 10k users' would be.
 */
export const BENCH_POD_ENV: Readonly<Record<string, string>> = {
  HOST,
  JWT_SECRET: BENCH_SECRET,
  MAX_CONNECTIONS: "19500",
  SHUTDOWN_DRAIN_MS: "200",
  MAX_CONNECTIONS_PER_USER: "0",
  RATE_LIMIT_STREAMS_MAX: "0",
  RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
  RATE_LIMIT_PUBLISH_MAX: "0",
  RATE_LIMIT_CHAT_MAX: "0",
  CHANNEL_PUBLISH_MAX: "0",
  MAX_REPLAYS_PER_USER: "1000000",
};

/** Our service: one pod. */
export async function startRealtime(options: StartOptions = {}): Promise<Target> {
  const dir = runDir("realtime");
  const port = await freePort();
  const env: Record<string, string> = {
    ...((options.development ?? process.env.BENCH_DEVELOPMENT === "1")
      ? { NODE_ENV: "development", LOG_LEVEL: "info" }
      : { NODE_ENV: "production", LOG_LEVEL: "warn" }),
    ...BENCH_POD_ENV,
    PORT: String(port),
    MAX_CONNECTIONS: String(options.maxConnections ?? 19_500),
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
    ...(options.h2 ? { HTTP2: "h2c" } : {}),
    NODE_OPTIONS: podNodeOptions(),
    ...options.env,
  };
  // A pod like every other (`@realtime/testkit/pods`), pinned, in its own process group, its
  // output in the run directory.
  const pod = await launchPod(env, {
    launcher: PIN ? ["/usr/bin/taskset", "-c", SERVER_CPU] : [],
    nodeFlags: options.nodeFlags ?? [],
    inheritEnv: true,
    detached: true,
    cwd: dir,
    stdio: openSync(join(dir, "out.log"), "a"),
  });
  const h2 = options.h2 === true;
  const subToken = userToken("u_bench");
  const pubToken = publisherToken();
  return {
    kind: "realtime",
    host: HOST,
    port,
    pid: pod.pid,
    h2,
    subPath: (channel) => `/api/events?channel=channel:b${channel}`,
    subHeaders: { authorization: `Bearer ${subToken}` },
    publish: options.chat
      ? (channel, seq, timeUs) => ({
          method: "POST",
          path: "/api/chat/messages",
          headers: { authorization: `Bearer ${subToken}`, "content-type": "application/json" },
          body: `{"channel":"b${channel}","content":"${marker(seq, timeUs)}"}`,
        })
      : (channel, seq, timeUs) => ({
          method: "POST",
          path: "/api/publish",
          headers: { authorization: `Bearer ${pubToken}`, "content-type": "application/json" },
          body: `{"channel":"channel:b${channel}","event":{"type":"bench","m":"${marker(seq, timeUs)}"}}`,
        }),
    stop: async () => {
      const timer = setTimeout(() => void pod.kill("SIGKILL"), 10_000);
      await pod.kill("SIGTERM");
      clearTimeout(timer);
    },
    kill: async () => {
      await pod.kill("SIGKILL");
    },
  };
}

/** For h2c-only listeners (no HTTP/1.1 probe): wait until the port accepts. */
export async function waitListening(child: ChildProcess, port: number, dir: string) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`server exited early:\n${tail(join(dir, "out.log"))}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: HOST, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server on ${port} not listening`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One Nchan node (nginx master + 1 worker). */
export async function startNchan(options: StartOptions = {}): Promise<Target> {
  const dir = runDir("nchan");
  const port = await freePort();
  const conf = writeNchanConfig({
    dir,
    port,
    redisUrl: options.redisUrl,
    h2: options.h2,
    ...options.nchan,
  });
  testNchanConfig(dir, conf);
  const child = spawnPinned(NGINX, ["-p", dir, "-c", conf], dir, {});
  await waitListening(child, port, dir);
  return {
    kind: "nchan",
    host: HOST,
    port,
    pid: child.pid as number,
    h2: options.h2 === true,
    subPath: (channel) => `/sub/b${channel}`,
    subHeaders: {},
    publish: (channel, seq, timeUs) => ({
      method: "POST",
      path: `/pub/b${channel}`,
      headers: { "content-type": "application/json" },
      body: peerBody(channel, seq, timeUs),
    }),
    // SIGQUIT: graceful; TERM is a fast shutdown, either is fine for a bench.
    stop: () => stopChild(child, "SIGTERM"),
    kill: () => stopChild(child, "SIGKILL"),
  };
}

/** The node:http or better-sse hub. */
export async function startPeer(kind: "node" | "better-sse"): Promise<Target> {
  const dir = runDir(kind);
  const port = await freePort();
  const script = join(PEERS, kind === "node" ? "node-hub.ts" : "better-sse-hub.ts");
  const child = spawnPinned(process.execPath, [script], dir, { PORT: String(port), HOST });
  await waitListening(child, port, dir);
  return {
    kind,
    host: HOST,
    port,
    pid: child.pid as number,
    h2: false,
    subPath: (channel) => `/sub/b${channel}`,
    subHeaders: {},
    publish: (channel, seq, timeUs) => ({
      method: "POST",
      path: `/pub/b${channel}`,
      headers: { "content-type": "application/json" },
      body: peerBody(channel, seq, timeUs),
    }),
    stop: () => stopChild(child, "SIGTERM"),
    kill: () => stopChild(child, "SIGKILL"),
  };
}

export async function startServer(kind: ServerKind, options: StartOptions = {}): Promise<Target> {
  switch (kind) {
    case "realtime":
      return startRealtime(options);
    case "nchan":
      return startNchan(options);
    default:
      return startPeer(kind);
  }
}

/**
 * A private redis-server on a free port, pinned to the server core. Pinned by pid once it
 * answers: test-redis.ts reads `REDIS_SERVER_BIN` (the `taskset` wrapper) when it is first
 * imported, which `@realtime/testkit/pods` does before any scenario runs, so the wrapper alone
 * left Redis on the generator's core (the affinity it inherits from this process).
 */
export async function startPinnedRedis(): Promise<{
  url: string;
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
}> {
  const dir = runDir("redis-wrapper");
  const wrapper = join(dir, "redis-server");
  const pin = PIN ? `/usr/bin/taskset -c ${SERVER_CPU} ` : "";
  writeFileSync(wrapper, `#!/bin/sh\nexec ${pin}/usr/bin/redis-server "$@"\n`);
  chmodSync(wrapper, 0o755);
  process.env.REDIS_SERVER_BIN = wrapper;
  const { startRedis } = await import("@realtime/testkit/redis");
  const redis = await startRedis();
  const pid = redisPid(redis.port);
  if (PIN && pid !== undefined) {
    execFileSync("/usr/bin/taskset", ["-a", "-pc", SERVER_CPU, String(pid)], { stdio: "ignore" });
  }
  return { url: redis.url, port: redis.port, pid, stop: () => redis.stop() };
}

/**
 * A private 3-master (or `masters`) Redis Cluster on free ports, every node pinned to the
 * server core by pid (as {@link startPinnedRedis} does). Pods reach it with
 * `REDIS_CLUSTER_NODES`.
 */
export async function startPinnedRedisCluster(masters = 3): Promise<{
  nodes: string;
  ports: number[];
  pids: number[];
  stop(): Promise<void>;
}> {
  const { startRedisCluster } = await import("@realtime/testkit/redis");
  const cluster = await startRedisCluster(masters);
  const ports = cluster.nodes.map((n) => n.port);
  const pids: number[] = [];
  for (const port of ports) {
    const pid = redisPid(port);
    if (pid === undefined) continue;
    pids.push(pid);
    if (PIN) {
      execFileSync("/usr/bin/taskset", ["-a", "-pc", SERVER_CPU, String(pid)], {
        stdio: "ignore",
      });
    }
  }
  return {
    nodes: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(","),
    ports,
    pids,
    stop: () => cluster.stop(),
  };
}

/** `used_memory` of the redis-server on `port` (its `INFO memory`), in bytes, or null. */
export function redisUsedMemory(port: number): number | null {
  try {
    const info = execFileSync("/usr/bin/redis-cli", ["-p", String(port), "INFO", "memory"], {
      encoding: "utf8",
      timeout: 5_000,
    });
    const used = /^used_memory:(\d+)/m.exec(info)?.[1];
    return used === undefined ? null : Number(used);
  } catch {
    return null;
  }
}

/** The pid of the redis-server on `port` (its `INFO server`), if it answers. */
function redisPid(port: number): number | undefined {
  try {
    const info = execFileSync("/usr/bin/redis-cli", ["-p", String(port), "INFO", "server"], {
      encoding: "utf8",
      timeout: 5_000,
    });
    const pid = /process_id:(\d+)/.exec(info)?.[1];
    return pid === undefined ? undefined : Number(pid);
  } catch {
    return undefined;
  }
}
