/**
 * Throwaway `redis-server` processes for integration tests: each on a free port with its own
 * temporary directory, no persistence (`--save "" --appendonly no`), so a restart is empty.
 *
 * The machine's shared Redis (6379) is never touched. Every process and directory started here
 * is also removed when the test process exits, so a failing test does not leak servers.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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
  /** The replicas, each with the port of the master it follows (none unless asked for). */
  readonly replicas: readonly { host: string; port: number; masterPort: number }[];
  /**
   * `CLUSTER FAILOVER` on the replica at `port` (a coordinated failover: it takes over once it
   * has everything its master acknowledged); resolves when every node sees it as a master.
   */
  failover(port: number): Promise<void>;
  /** Masters and replicas as the node at `port` (default: any live one) sees them now. */
  topology(port?: number): Promise<{
    masters: number[];
    replicas: { port: number; masterPort: number }[];
  }>;
  /** Sends `signal` to the node listening on `port` (SIGSTOP/SIGCONT to freeze it, SIGKILL). */
  signal(port: number, signal: NodeJS.Signals): void;
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

/**
 * A TCP port nobody listens on right now, that this process has not handed out before.
 *
 * Ports come from below the kernel's ephemeral range, at random: `listen(0)` and outgoing
 * connections never take those, so between the check and the server's bind the only rivals
 * are other test processes drawing at random too. Callers that start a server on the port
 * still verify that what answers there is theirs (see {@link startRedis}).
 */
export async function freePort(): Promise<number> {
  const [low, high] = unassignedRange();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = randomInt(low, high);
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${low}–${high}`);
}

const handedOut = new Set<number>();

/** Ports neither the ephemeral range nor the well-known services use. */
function unassignedRange(): [number, number] {
  let ephemeralLow = 32_768;
  try {
    const text = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    ephemeralLow = Number(text.trim().split(/\s+/)[0]) || ephemeralLow;
  } catch {
    // not Linux: the IANA default range starts at 49152, and 32768 is below it too
  }
  return [10_000, Math.max(ephemeralLow, 11_000)];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/** Makes `replica` a replica of `master` (`REPLICAOF`); resolves once it is in sync. */
export async function replicate(replica: TestRedis, master: TestRedis): Promise<void> {
  await redisCli(replica.port, "REPLICAOF", "127.0.0.1", String(master.port));
  await until(`${replica.port} in sync with ${master.port}`, 15_000, async () =>
    (await redisCli(replica.port, "INFO", "replication")).includes("master_link_status:up"),
  );
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

/**
 * Waits until `child` answers on `port`. Fails at once when it exits (its port was taken after
 * all) and when another process answers there: a test must never run against a server that
 * is not the one it started.
 */
async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited()) throw new PortTaken(`redis-server on ${port} exited at start`);
    const info = await redisCli(port, "INFO", "server").catch(() => "");
    const pid = /process_id:(\d+)/.exec(info)?.[1];
    if (pid !== undefined) {
      if (Number(pid) === child.pid) return;
      if (exited()) throw new PortTaken(`port ${port} is another redis-server's (pid ${pid})`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for redis-server on ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

class PortTaken extends Error {}

/**
 * Spawns a redis-server on fresh ports and waits until it answers; draws new ports when the
 * ones drawn were taken between the check and the bind.
 */
async function spawnOnFreePort(
  extra: (dir: string, busPort: number) => string[] = () => [],
): Promise<{ port: number; dir: string; child: ChildProcess }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const busPort = await freePort();
    const dir = tempDir();
    const child = spawnServer(port, dir, extra(dir, busPort));
    try {
      await waitForPing(port, child);
      return { port, dir, child };
    } catch (error) {
      await stopChild(child, "SIGKILL");
      removeDir(dir);
      if (!(error instanceof PortTaken) || attempt === 5) throw error;
    }
  }
}

/** Starts one empty redis-server on a free port. */
export async function startRedis(): Promise<TestRedis> {
  const started = await spawnOnFreePort();
  const { port, dir } = started;
  let child = started.child;
  let stopped = false;
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

/**
 * Starts `masters` cluster-enabled servers (and `replicasPerMaster` replicas of each) and joins
 * them into one cluster.
 */
export async function startRedisCluster(
  masters = 3,
  { replicasPerMaster = 0 }: { replicasPerMaster?: number } = {},
): Promise<TestRedisCluster> {
  const started: { port: number; dir: string; child: ChildProcess }[] = [];
  const stop = async () => {
    // A node a test froze (SIGSTOP) must wake up to hear the SIGTERM.
    for (const node of started) if (node.child.exitCode === null) node.child.kill("SIGCONT");
    await Promise.all(started.map((node) => stopChild(node.child, "SIGTERM")));
    for (const node of started) removeDir(node.dir);
  };
  try {
    // biome-ignore format: flag/value pairs read better side by side
    const clusterArgs = (dir: string, busPort: number) => [
      "--cluster-enabled", "yes",
      "--cluster-config-file", join(dir, "nodes.conf"),
      "--cluster-port", String(busPort),
      "--cluster-node-timeout", "5000",
    ];
    const spawned = await Promise.allSettled(
      Array.from({ length: masters * (1 + replicasPerMaster) }, async () => {
        started.push(await spawnOnFreePort(clusterArgs));
      }),
    );
    const failed = spawned.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    const addresses = started.map((node) => `${HOST}:${node.port}`);
    await run(
      REDIS_CLI,
      // biome-ignore format: flag/value pairs read better side by side
      ["--cluster", "create", ...addresses, "--cluster-replicas", String(replicasPerMaster), "--cluster-yes"],
      { timeout: 30_000 },
    );
    for (const node of started) {
      await until(`cluster_state:ok with ${masters} masters on ${node.port}`, 20_000, async () => {
        const info = await redisCli(node.port, "CLUSTER", "INFO");
        return info.includes("cluster_state:ok") && info.includes(`cluster_size:${masters}`);
      });
    }
    const replicas = masters * replicasPerMaster;
    let roles = await clusterRoles(started[0]?.port ?? 0);
    await until(`${masters} masters and ${replicas} replicas`, 20_000, async () => {
      roles = await clusterRoles(started[0]?.port ?? 0);
      return roles.masters.length === masters && roles.replicas.length === replicas;
    });
    for (const replica of roles.replicas) {
      await until(`replica ${replica.port} in sync`, 20_000, async () =>
        (await redisCli(replica.port, "INFO", "replication")).includes("master_link_status:up"),
      );
    }
    const ports = started.map((node) => node.port);
    return {
      nodes: roles.masters.map((port) => ({ host: HOST, port })),
      replicas: roles.replicas.map((r) => ({ host: HOST, ...r })),
      stop,
      topology: (port = ports[0] ?? 0) => clusterRoles(port),
      signal(port: number, signal: NodeJS.Signals) {
        const node = started.find((n) => n.port === port);
        if (!node) throw new Error(`no node on ${port}`);
        node.child.kill(signal);
      },
      async failover(port: number) {
        // A manual failover gives up by itself when the master does not pause its clients and
        // hand over its offset within the manual-failover timeout (5 s), which a machine under
        // heavy load can miss (a chaos soak next to a test run: "could not be undone"). The
        // replica is asked again until it reports itself a master.
        for (let attempt = 1; ; attempt++) {
          await redisCli(port, "CLUSTER", "FAILOVER");
          const promoted = await until(`${port} a master`, 10_000, async () =>
            (await clusterRoles(port)).masters.includes(port),
          ).then(
            () => true,
            (error: unknown) => {
              if (attempt === 3) throw error;
              return false;
            },
          );
          if (promoted) break;
        }
        for (const other of ports) {
          await until(`${port} a master as seen from ${other}`, 20_000, async () =>
            (await clusterRoles(other)).masters.includes(port),
          );
        }
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Masters and replicas as `CLUSTER NODES` on `port` lists them. */
async function clusterRoles(
  port: number,
): Promise<{ masters: number[]; replicas: { port: number; masterPort: number }[] }> {
  const lines = (await redisCli(port, "CLUSTER", "NODES")).split("\n").filter(Boolean);
  const byId = new Map<string, number>();
  const rows = lines.map((line) => {
    const [id = "", address = "", flags = "", master = ""] = line.split(" ");
    const nodePort = Number(address.split("@")[0]?.split(":").at(-1));
    byId.set(id, nodePort);
    return { port: nodePort, flags: flags.split(","), master };
  });
  const live = rows.filter((r) => !r.flags.includes("fail") && !r.flags.includes("noaddr"));
  return {
    masters: live.filter((r) => r.flags.includes("master")).map((r) => r.port),
    replicas: live
      .filter((r) => r.flags.includes("slave"))
      .map((r) => ({ port: r.port, masterPort: byId.get(r.master) ?? 0 })),
  };
}
