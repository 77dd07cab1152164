/**
 * Throwaway `redis-server` processes for integration tests: each on a free port with its own
 * temporary directory, no persistence (`--save "" --appendonly no`), so a restart is empty.
 *
 * The machine's shared Redis (6379) is never touched. Every process and directory started here
 * is also removed when the test process exits, so a failing test does not leak servers.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? "/usr/bin/redis-server";
const REDIS_CLI = process.env.REDIS_CLI_BIN ?? "/usr/bin/redis-cli";
const HOST = "127.0.0.1";
const START_TIMEOUT_MS = 10_000;
const run = promisify(execFile);

export interface TestRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** Kills the server (SIGKILL) and starts an empty one on the same port. */
  restart(): Promise<void>;
  /** Kills the server (SIGKILL) without starting it again. */
  kill(): Promise<void>;
}

export interface TestRedisCluster {
  /** The masters, each owning a share of the 16384 slots. */
  readonly nodes: readonly { host: string; port: number }[];
  /** Stops every node and removes their directories. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

// Last line of defence when a test throws before its `after` hook ran.
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs `redis-cli -p <port> <args…>` and returns its trimmed output. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(REDIS_CLI, ["-h", HOST, "-p", String(port), ...args], {
    timeout: 5_000,
  });
  return stdout.trim();
}

/** Polls `probe` until it returns true, up to `timeoutMs`. */
async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function spawnServer(port: number, dir: string, extra: string[]): ChildProcess {
  // biome-ignore format: flag/value pairs read better side by side
  const args = [
    "--port", String(port),
    "--bind", HOST,
    "--dir", dir,
    "--save", "",
    "--appendonly", "no",
    "--protected-mode", "no",
    "--daemonize", "no",
    "--logfile", join(dir, "redis.log"),
    ...extra,
  ];
  const child = spawn(REDIS_SERVER, args, { stdio: "ignore" });
  // Let a test process whose test forgot `stop()` exit; the "exit" hook then kills the server.
  child.unref();
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "realtime-redis-"));
  dirs.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  await until(`redis-server on port ${port}`, START_TIMEOUT_MS, async () => {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited`);
    return (await redisCli(port, "PING")) === "PONG";
  });
}

/** Starts one empty redis-server on a free port. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = tempDir();
  let child = spawnServer(port, dir, []);
  let stopped = false;
  await waitForPing(port, child);
  return {
    port,
    url: `redis://${HOST}:${port}`,
    async stop() {
      stopped = true;
      await stopChild(child, "SIGTERM");
      removeDir(dir);
    },
    async kill() {
      await stopChild(child, "SIGKILL");
    },
    async restart() {
      if (stopped) throw new Error("redis was stopped");
      await stopChild(child, "SIGKILL");
      child = spawnServer(port, dir, []);
      await waitForPing(port, child);
    },
  };
}

/** Starts `masters` cluster-enabled servers and joins them into one cluster without replicas. */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const started: { port: number; dir: string; child: ChildProcess }[] = [];
  const stop = async () => {
    await Promise.all(started.map((node) => stopChild(node.child, "SIGTERM")));
    for (const node of started) removeDir(node.dir);
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      const busPort = await freePort();
      const dir = tempDir();
      // biome-ignore format: flag/value pairs read better side by side
      const child = spawnServer(port, dir, [
        "--cluster-enabled", "yes",
        "--cluster-config-file", join(dir, "nodes.conf"),
        "--cluster-port", String(busPort),
        "--cluster-node-timeout", "5000",
      ]);
      started.push({ port, dir, child });
    }
    await Promise.all(started.map((node) => waitForPing(node.port, node.child)));
    const addresses = started.map((node) => `${HOST}:${node.port}`);
    await run(
      REDIS_CLI,
      ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"],
      { timeout: 30_000 },
    );
    for (const node of started) {
      await until(`cluster_state:ok on ${node.port}`, 20_000, async () =>
        (await redisCli(node.port, "CLUSTER", "INFO")).includes("cluster_state:ok"),
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes: started.map((node) => ({ host: HOST, port: node.port })), stop };
}
