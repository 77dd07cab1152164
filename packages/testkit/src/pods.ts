/**
 * Real service processes ("pods") for multi-pod integration tests: each is `node main.ts` on a
 * free loopback port with the environment the test gives it (usually `REDIS_URL` or
 * `REDIS_CLUSTER_NODES` of a redis-server the test started itself) and a JWT secret shared by
 * every pod, so a token from one pod works on all of them.
 *
 * `startPod` resolves once the pod is ready: its "realtime is ready" log line (when the log
 * level shows info lines) and a 200 from `/readyz`. Every pod still running when the test
 * process exits is SIGKILLed, so a failing test does not leak processes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import http2 from "node:http2";
import { SERVICE_MAIN } from "./entry-points.ts";
import { freePort } from "./redis/index.ts";

/** The JWT secret every pod of a test shares (≥ 32 characters, as production requires). */
export const POD_SECRET = "pods-secret-pods-secret-pods-secret-0123";

/** How long a pod may take to become ready. */
const START_TIMEOUT_MS = 20_000;
/** Output kept per pod for error messages. */
const MAX_OUTPUT = 64 * 1024;

export interface PodExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface Pod {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** The environment the pod runs with (without PATH). */
  readonly env: Readonly<Record<string, string>>;
  /** The current process' pid. */
  readonly pid: number;
  /** Resolves when the current process exits (a restart starts a new one). */
  readonly exited: Promise<PodExit>;
  /** Whether the current process has exited. */
  readonly dead: boolean;
  /** The last 64 KiB of the pod's stdout and stderr. */
  output(): string;
  /** Sends `signal` (default SIGKILL) and resolves when the process exited. */
  kill(signal?: NodeJS.Signals): Promise<PodExit>;
  /** Kills the process if it still runs, then starts it again on the same port and env. */
  restart(): Promise<void>;
  /** Status of `GET /readyz` now (0 when the pod does not answer). */
  readyz(): Promise<number>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/**
 * Starts a pod: `NODE_ENV=test`, `LOG_LEVEL=warn`, `HOST=127.0.0.1`, a free `PORT` and
 * {@link POD_SECRET}, overridden by `env`. It (and every restart) must be ready within
 * `readyTimeoutMs` (default 20 s).
 */
export async function startPod(
  env: Record<string, string> = {},
  { readyTimeoutMs = START_TIMEOUT_MS }: { readyTimeoutMs?: number } = {},
): Promise<Pod> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const fullEnv: Record<string, string> = {
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    HOST: "127.0.0.1",
    JWT_SECRET: POD_SECRET,
    // Streams close fast on SIGTERM: tests do not wait for the default 5 s drain.
    SHUTDOWN_DRAIN_MS: "200",
    // Load tests post chat far faster than a person, and fault tests reconnect a few users'
    // many streams far faster than a browser would (the limits' own tests set them).
    RATE_LIMIT_CHAT_MAX: "0",
    RATE_LIMIT_STREAMS_MAX: "0",
    RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
    ...env,
    PORT: String(port),
  };
  const url = `http://127.0.0.1:${port}`;
  const h2c = fullEnv.HTTP2 === "h2c";
  let output = "";
  let child!: ChildProcess;
  let exited!: Promise<PodExit>;

  const launch = async () => {
    output = "";
    child = spawn(process.execPath, [SERVICE_MAIN], {
      env: { PATH: process.env.PATH ?? "", ...fullEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(child);
    const current = child;
    exited = new Promise((resolve) => {
      current.once("exit", (code, signal) => {
        live.delete(current);
        resolve({ code, signal });
      });
    });
    const append = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    try {
      await waitUntilReady(
        url,
        current,
        () => output,
        fullEnv.LOG_LEVEL ?? "warn",
        h2c,
        readyTimeoutMs,
      );
    } catch (error) {
      current.kill("SIGKILL");
      throw error;
    }
  };

  const kill = async (signal: NodeJS.Signals = "SIGKILL"): Promise<PodExit> => {
    const current = exited;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return current;
  };

  await launch();
  return {
    port,
    url,
    env: fullEnv,
    get pid() {
      return child.pid ?? 0;
    },
    get exited() {
      return exited;
    },
    get dead() {
      return child.exitCode !== null || child.signalCode !== null;
    },
    output: () => output,
    kill,
    async restart() {
      await kill("SIGKILL");
      await launch();
    },
    readyz: () => status(`${url}/readyz`, h2c),
  };
}

/** Starts `count` pods with the same `env`, in parallel. */
export function startPods(count: number, env: Record<string, string>): Promise<Pod[]> {
  return Promise.all(Array.from({ length: count }, () => startPod(env)));
}

/** Stops pods with SIGTERM (graceful drain), SIGKILL after 5 s. Ignores pods already dead. */
export async function stopPods(pods: readonly (Pod | undefined)[]): Promise<void> {
  await Promise.all(
    pods.map(async (pod) => {
      if (!pod || pod.dead) return;
      const timer = setTimeout(() => void pod.kill("SIGKILL"), 5_000);
      await pod.kill("SIGTERM");
      clearTimeout(timer);
    }),
  );
}

const INFO_LEVELS = new Set(["info", "debug", "trace"]);

async function waitUntilReady(
  url: string,
  child: ChildProcess,
  output: () => string,
  level: string,
  h2c: boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exitedEarly = () => child.exitCode !== null || child.signalCode !== null;
  const fail = (what: string) =>
    new Error(`pod ${url}: ${what}; output:\n${output().slice(-4000)}`);
  // The ready line is an info line: at LOG_LEVEL=warn (the default here, so thousands of
  // requests do not flood the pipe) a pod prints nothing when it is ready, and /readyz is the
  // only signal.
  const wantLine = INFO_LEVELS.has(level);
  for (;;) {
    if (exitedEarly()) throw fail("exited before it was ready");
    const line = !wantLine || output().includes("realtime is ready");
    if (line && (await status(`${url}/readyz`, h2c)) === 200) return;
    if (Date.now() > deadline) {
      throw fail(line ? "/readyz did not turn 200" : 'no "realtime is ready" line');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Status of a GET (0 when nothing answers), on a fresh connection, within 2 s; `h2c` asks in
 * cleartext HTTP/2 (a pod started with `HTTP2=h2c` speaks nothing else).
 */
export function status(url: string, h2c = false): Promise<number> {
  if (h2c) return h2cStatus(url);
  return new Promise((resolve) => {
    const request = http.get(url, { agent: false, timeout: 2_000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(0));
  });
}

function h2cStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const { origin, pathname } = new URL(url);
    const session = http2.connect(origin);
    const done = (code: number) => {
      clearTimeout(timer);
      session.destroy();
      resolve(code);
    };
    const timer = setTimeout(() => done(0), 2_000);
    session.once("error", () => done(0));
    const request = session.request({ ":path": pathname });
    request.once("response", (headers) => done(Number(headers[":status"] ?? 0)));
    request.once("error", () => done(0));
  });
}

export { SERVICE_MAIN } from "./entry-points.ts";
