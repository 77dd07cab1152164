import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Pod, startPod } from "../pods.ts";
import { freePort, startRedis, startRedisCluster } from "../redis/index.ts";
import {
  NGINX_TEMPLATE,
  type NginxProcess,
  renderTemplate,
  selfSignedCertificate,
  startNginx,
  stopNginx,
  upstreamServers,
  waitThroughProxy,
} from "./nginx.ts";

export interface StackOptions {
  /** Pods. Default 3. */
  readonly pods?: number;
  /** nginx's HTTPS port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** First pod port (the others follow); 0 picks free ones. Default 0. */
  readonly podPort?: number;
  /** State, certificate, nginx prefix and logs. Created if missing; the stack's own files in it are replaced. */
  readonly runDir: string;
  /** Pod environment (JWT_SECRET, SHUTDOWN_DRAIN_MS, …) on top of the stack's defaults. */
  readonly env?: Readonly<Record<string, string>>;
  /** An existing Redis; default: a redis-server of the stack's own on a free port. */
  readonly redisUrl?: string;
  /** A throwaway 3-master Redis Cluster of the stack's own instead (sharded pub/sub). */
  readonly redisCluster?: boolean;
  /** nginx `fail_timeout` of each pod, in seconds. Default 2. */
  readonly failTimeoutSeconds?: number;
}

export interface Stack {
  /** `https://127.0.0.1:<port>`: nginx. */
  readonly url: string;
  readonly port: number;
  readonly pods: Pod[];
  /** `REDIS_URL`, or the `REDIS_CLUSTER_NODES` list with `--redis-cluster`. */
  readonly redisUrl: string;
  /** The JWT secret every pod shares. */
  readonly secret: string;
  readonly runDir: string;
  readonly nginx: NginxProcess;
  /** Drains the pods (SIGTERM), then stops nginx and the stack's Redis. Idempotent. */
  stop(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const count = options.pods ?? 3;
  const runDir = options.runDir;
  // Only the stack's own files: --run-dir may name a directory that holds other things.
  for (const name of ["nginx", "cert.pem", "key.pem", "state.json", "control.sock"]) {
    rmSync(join(runDir, name), { recursive: true, force: true });
  }
  const prefix = join(runDir, "nginx");
  for (const dir of ["logs", "temp"]) mkdirSync(join(prefix, dir), { recursive: true });
  // nginx workers run as `nobody` when the master is root: they must reach the prefix.
  if (process.getuid?.() === 0) for (const dir of [runDir, prefix]) chmodSync(dir, 0o755);

  const cleanups: (() => Promise<void> | void)[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    })();
    return stopped;
  };

  try {
    const certificate = selfSignedCertificate(runDir);
    let redisUrl = options.redisUrl;
    const redisEnv: Record<string, string> = {};
    if (options.redisCluster) {
      const cluster = await startRedisCluster(3);
      cleanups.push(() => cluster.stop());
      redisUrl = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(",");
      redisEnv.REDIS_CLUSTER_NODES = redisUrl;
    } else {
      if (!redisUrl) {
        const redis = await startRedis();
        cleanups.push(() => redis.stop());
        redisUrl = redis.url;
      }
      redisEnv.REDIS_URL = redisUrl;
    }
    const secret = options.env?.JWT_SECRET ?? randomBytes(32).toString("base64url");
    const ports = await podPorts(count, options.podPort ?? 0);
    const pods: Pod[] = [];
    cleanups.push(() => stopPodsGracefully(pods));
    const started = await Promise.allSettled(
      ports.map(async (port, i) => {
        pods[i] = await startPod({
          NODE_ENV: "development",
          LOG_LEVEL: "warn",
          SHUTDOWN_DRAIN_MS: "5000",
          // Client addresses from nginx's X-Forwarded-For (one proxy hop).
          TRUST_PROXY: "1",
          ...options.env,
          HOST: "127.0.0.1",
          JWT_SECRET: secret,
          ...redisEnv,
          PORT: String(port),
        });
      }),
    );
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;

    const port = options.port || (await freePort());
    const { cert, key } = await certificate;
    const config = join(prefix, "nginx.conf");
    writeFileSync(
      config,
      renderTemplate(readFileSync(NGINX_TEMPLATE, "utf8"), {
        PREFIX: prefix,
        LISTEN: `127.0.0.1:${port}`,
        CERT: cert,
        KEY: key,
        UPSTREAM_SERVERS: upstreamServers(ports, options.failTimeoutSeconds ?? 2),
      }),
    );
    const nginx = await startNginx(prefix, config);
    cleanups.push(() => stopNginx(nginx.child));
    const url = `https://127.0.0.1:${port}`;
    await waitThroughProxy(url, nginx);
    return {
      url,
      port,
      pods,
      redisUrl,
      secret,
      runDir,
      nginx: {
        pid: nginx.child.pid ?? 0,
        exited: nginx.exited,
        config,
        errorLog: join(prefix, "logs", "error.log"),
        accessLog: join(prefix, "logs", "access.log"),
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function podPorts(count: number, first: number): Promise<number[]> {
  if (first > 0) return Array.from({ length: count }, (_, i) => first + i);
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** SIGTERM to every pod at once; SIGKILL a pod still running after its drain + 10 s. */
async function stopPodsGracefully(pods: readonly Pod[]): Promise<void> {
  await Promise.all(
    pods.map(async (pod) => {
      if (!pod || pod.dead) return;
      const budget = Number(pod.env.SHUTDOWN_DRAIN_MS ?? 5_000) + 10_000;
      const timer = setTimeout(() => void pod.kill("SIGKILL"), budget);
      await pod.kill("SIGTERM");
      clearTimeout(timer);
    }),
  );
}
