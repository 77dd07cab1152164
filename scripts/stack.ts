/**
 * `npm run stack`: the reference deployment on one machine — its own redis-server, N pods
 * (`node apps/service/src/main.ts`, default 3) and nginx (the Debian package's binary, with
 * this stack's own config, prefix, pid file and ports; never the system service) terminating
 * TLS with HTTP/2 for clients and balancing over the pods with HTTP/1.1 keep-alive. The
 * certificate is self-signed, made by openssl at start. Prints the URL; Ctrl-C (or
 * `npm run stack -- stop` from another terminal) drains the pods and stops everything.
 * `npm run stack:restart` restarts the pods one at a time while clients stay connected.
 *
 * Options: `--pods N` (default 3), `--port P` (nginx, default 8443), `--pod-port P` (first pod,
 * default 8081), `--redis-cluster` (a throwaway 3-master Redis Cluster instead of one
 * redis-server), `--run-dir DIR` (state, certificate, rendered nginx.conf and logs; default
 * `$TMPDIR/realtime-stack`). Environment: `REDIS_URL` (use that Redis instead of starting one),
 * `NGINX_BIN` (default /usr/sbin/nginx), `LOG_LEVEL` (default warn), `NODE_ENV` (default
 * development, which serves the OpenAPI docs at /docs), and any other service variable, passed
 * to every pod.
 *
 * The same code starts the stack in the end-to-end tests (`startStack`).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { createAuth } from "@realtime/service";
import { type Pod, type PodExit, startPod } from "@realtime/testkit/pods";
import { freePort, startRedis, startRedisCluster } from "@realtime/testkit/redis";
import { defaultRunDir, formatReport, rollingRestart } from "./rolling-restart.ts";

const run = promisify(execFile);

/** The reference nginx configuration, with `@@NAME@@` placeholders. */
export const NGINX_TEMPLATE = new URL("../deploy/nginx/nginx.conf", import.meta.url);
const NGINX_BIN = process.env.NGINX_BIN || "/usr/sbin/nginx";
const OPENSSL_BIN = process.env.OPENSSL_BIN || "/usr/bin/openssl";
/** How long nginx may take to answer through to a pod. */
const NGINX_START_TIMEOUT_MS = 10_000;

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

export interface NginxProcess {
  readonly pid: number;
  readonly exited: Promise<PodExit>;
  /** The rendered configuration file. */
  readonly config: string;
  readonly errorLog: string;
  readonly accessLog: string;
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

/** Replaces every `@@NAME@@` of `template`; throws on a placeholder without a value. */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>) {
  return template.replace(/@@([A-Z_]+)@@/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for @@${name}@@`);
    return value;
  });
}

/** The `server` lines of the upstream block, one per pod. */
export function upstreamServers(ports: readonly number[], failTimeoutSeconds: number): string {
  return ports
    .map((port) => `    server 127.0.0.1:${port} max_fails=1 fail_timeout=${failTimeoutSeconds}s;`)
    .join("\n");
}

/** A self-signed certificate for localhost / 127.0.0.1 (P-256, 30 days), made by openssl. */
export async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  // biome-ignore format: flag/value pairs read better side by side
  await run(OPENSSL_BIN, [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-sha256",
    "-nodes", "-days", "30", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", key, "-out", cert,
  ], { timeout: 10_000 });
  return { cert, key };
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

const nginxChildren = new Set<ChildProcess>();
// nginx's workers outlive a SIGKILLed master: whatever ends this process, ask the master to
// shut down (SIGTERM: fast shutdown, it stops its workers).
process.once("exit", () => {
  for (const child of nginxChildren) child.kill("SIGTERM");
});

export async function startNginx(prefix: string, config: string) {
  const child = spawn(NGINX_BIN, ["-p", `${prefix}/`, "-c", config, "-e", "stderr"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  nginxChildren.add(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_192);
  });
  const exited = new Promise<PodExit>((resolve) => {
    child.once("exit", (code, signal) => {
      nginxChildren.delete(child);
      resolve({ code, signal });
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  return { child, exited, stderr: () => stderr };
}

export async function stopNginx(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Waits until `GET /healthz` through nginx reaches a pod (200). */
export async function waitThroughProxy(
  url: string,
  nginx: { child: ChildProcess; stderr: () => string },
): Promise<void> {
  const deadline = Date.now() + NGINX_START_TIMEOUT_MS;
  for (;;) {
    if (nginx.child.exitCode !== null || nginx.child.signalCode !== null) {
      throw new Error(`nginx exited (${nginx.child.exitCode}):\n${nginx.stderr()}`);
    }
    if ((await httpsStatus(`${url}/healthz`)) === 200) return;
    if (Date.now() > deadline) {
      throw new Error(`nginx did not answer 200 on ${url}/healthz:\n${nginx.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Status of an HTTPS GET that accepts the self-signed certificate (0 when nothing answers). */
export function httpsStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = https.get(
      url,
      { agent: false, rejectUnauthorized: false, timeout: 2_000 },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(0));
  });
}

// --- CLI ------------------------------------------------------------------------------------

interface StackState {
  readonly pid: number;
  readonly url: string;
  readonly pods: readonly string[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readState(runDir: string): StackState | null {
  try {
    return JSON.parse(readFileSync(join(runDir, "state.json"), "utf8")) as StackState;
  } catch {
    return null;
  }
}

async function stopCommand(runDir: string): Promise<void> {
  const state = readState(runDir);
  if (!state || !alive(state.pid)) {
    console.log(`no stack is running (${runDir})`);
    return;
  }
  process.kill(state.pid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (alive(state.pid)) {
    if (Date.now() > deadline) throw new Error(`the stack (pid ${state.pid}) did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`stopped the stack at ${state.url}`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      pods: { type: "string", default: "3" },
      port: { type: "string", default: "8443" },
      "pod-port": { type: "string", default: "8081" },
      "run-dir": { type: "string" },
      "redis-cluster": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const runDir = values["run-dir"] ?? defaultRunDir();
  if (values.help || (positionals.length > 0 && positionals[0] !== "stop")) {
    console.log(
      "usage: npm run stack [-- --pods N] [--port HTTPS_PORT] [--pod-port FIRST] [--redis-cluster] [--run-dir DIR]\n" +
        "       npm run stack -- stop\n       npm run stack:restart",
    );
    return;
  }
  if (positionals[0] === "stop") return stopCommand(runDir);

  const pods = Number(values.pods);
  const port = Number(values.port);
  const podPort = Number(values["pod-port"]);
  if (!Number.isInteger(pods) || pods < 1 || pods > 32) throw new Error("--pods: 1..32");
  for (const p of [port, podPort, podPort + pods - 1]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error("--port/--pod-port: a port");
  }
  const running = readState(runDir);
  if (running && alive(running.pid)) {
    throw new Error(
      `a stack is already running (pid ${running.pid}, ${running.url}): \`npm run stack -- stop\``,
    );
  }

  // Every service variable of this shell reaches the pods (LOG_LEVEL, RETRY_MS, …).
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("npm_")) env[name] = value;
  }
  delete env.PORT;
  // The stack decides where Redis is: its own, REDIS_URL, or its own cluster.
  delete env.REDIS_CLUSTER_NODES;
  if (values["redis-cluster"]) delete env.REDIS_URL;
  // The pods serve the web app at / from apps/web/dist: build it when it is missing or stale.
  const { ensureWebBuilt } = await import("../apps/web/build.ts");
  await ensureWebBuilt();
  console.log(`starting redis, ${pods} pods and nginx…`);
  const stack = await startStack({
    pods,
    port,
    podPort,
    runDir,
    env,
    redisUrl: process.env.REDIS_URL || undefined,
    redisCluster: values["redis-cluster"],
  });

  let stopping = false;
  let restarting = false;
  let control: http.Server | undefined;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log("\nstopping: draining the pods…");
    control?.close();
    await stack.stop();
    console.log("stopped.");
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  void stack.nginx.exited.then((exit) => {
    if (stopping) return;
    console.error(`nginx exited (${exit.signal ?? exit.code}); see ${stack.nginx.errorLog}`);
    void shutdown(1);
  });
  const watch = (pod: Pod, name: string) => {
    const current = pod.exited;
    void current.then((exit) => {
      if (stopping || restarting || pod.exited !== current) return;
      console.error(
        `${name} exited unexpectedly (${exit.signal ?? exit.code}); nginx routes around it. ` +
          `Its last output:\n${pod.output().slice(-2_000)}`,
      );
    });
  };
  stack.pods.forEach((pod, i) => {
    watch(pod, `pod${i + 1}`);
  });

  // `npm run stack:restart` talks to this over a Unix socket in the run directory.
  const socketPath = join(runDir, "control.sock");
  if (existsSync(socketPath)) rmSync(socketPath);
  control = http.createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://stack");
    if (request.method !== "POST" || url.pathname !== "/rolling-restart") {
      response.writeHead(404).end("POST /rolling-restart\n");
      return;
    }
    if (restarting || stopping) {
      response.writeHead(409).end("a rolling restart or a stop is already running\n");
      return;
    }
    restarting = true;
    response.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    const say = (line: string) => {
      console.log(`[rolling restart] ${line}`);
      response.write(`${line}\n`);
    };
    const minReadyMs = Number(url.searchParams.get("minReadyMs") ?? 2_500);
    rollingRestart(stack.pods, {
      minReadyMs: Number.isFinite(minReadyMs) ? minReadyMs : 2_500,
      log: say,
      onReady: (pod, i) => watch(pod, `pod${i + 1}`),
    })
      .then(
        (report) => say(formatReport(report)),
        (error: unknown) =>
          say(`failed: ${error instanceof Error ? error.message : String(error)}`),
      )
      .finally(() => {
        restarting = false;
        response.end();
      });
  });
  await new Promise<void>((resolve) => control?.listen(socketPath, resolve));
  const state: StackState = {
    pid: process.pid,
    url: stack.url,
    pods: stack.pods.map((pod) => pod.url),
  };
  writeFileSync(join(runDir, "state.json"), `${JSON.stringify(state, null, 2)}\n`);

  const token = await createAuth({
    secret: stack.secret,
    issuer: env.JWT_ISSUER ?? "realtime",
    audience: env.JWT_AUDIENCE ?? "realtime",
    tokenTtlSeconds: 86_400,
    cookieName: "rt_session",
  }).issueServiceToken({ service: "stack-demo", scopes: ["publish"] });
  const docs =
    (env.NODE_ENV ?? "development") === "production" ? "" : `\n  docs    ${stack.url}/docs`;
  console.log(`
realtime stack: nginx (TLS, HTTP/2) → ${stack.pods.length} pods → redis (${stack.redisUrl})

  open    ${stack.url}/        (self-signed certificate: accept it once)${docs}
${stack.pods.map((pod, i) => `  pod${i + 1}    ${pod.url}`).join("\n")}
  nginx   ${stack.nginx.config}
  logs    ${join(runDir, "nginx", "logs")}

A stream and a publish through nginx (-k: the certificate is self-signed):

  TOKEN=$(curl -sk -X POST ${stack.url}/api/auth/dev-login -H 'content-type: application/json' \\
    -d '{"name":"Ada"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')
  curl -Nsk --http2 -H "Authorization: Bearer $TOKEN" '${stack.url}/api/events?channel=channel:general'
  curl -sk -X POST ${stack.url}/api/publish -H 'Authorization: Bearer ${token}' \\
    -H 'content-type: application/json' -d '{"channel":"channel:general","event":{"type":"notice","message":"hi"}}'

Rolling restart (streams stay up):  npm run stack:restart
Stop (or Ctrl-C here):              npm run stack -- stop
`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`stack: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
