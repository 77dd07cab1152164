/**
 * Real service processes ("pods"): each is `node main.ts` with the environment its starter
 * gives it, on a free loopback port unless `PORT` says otherwise. This is the one place that
 * starts pods: the multi-pod tests, e2e, the chaos stage, the nginx stack, the bench and the
 * scripts all come here.
 *
 * - {@link withPods}`(n, env)`: n pods in parallel with the test settings — `NODE_ENV=test`,
 *   `LOG_LEVEL=warn`, the per-user limits off, a quick drain and {@link POD_SECRET}, shared by
 *   every pod so a token from one works on all — overridden by `env`.
 * - {@link startPod}: one of them. {@link launchPod}: a pod with exactly the environment given
 *   (a benchmark or a script that runs the service as in production).
 *
 * A pod is ready once it logged "realtime is ready" (when the log level shows info lines) and
 * `/readyz` answers 200. Every pod still running when the starting process exits is SIGKILLed.
 */
import http from "node:http";
import http2 from "node:http2";
import { type ChildExit, type ChildOptions, startChild, type TestChild } from "./child-process.ts";
import { SERVICE_MAIN } from "./entry-points.ts";
import { freePort } from "./redis/index.ts";

/** The JWT secret every pod of a test shares (≥ 32 characters, as production requires). */
export const POD_SECRET = "pods-secret-pods-secret-pods-secret-0123";

/** How long a pod may take to become ready. */
const START_TIMEOUT_MS = 20_000;

export type PodExit = ChildExit;
export type PodEnv = Readonly<Record<string, string>>;

export interface PodOptions extends ChildOptions {
  /** How long it (and every restart) may take to be ready (default 20 s). */
  readonly readyTimeoutMs?: number;
  /**
   * The script and its arguments (default `SERVICE_MAIN`, none): another tree's entry, e.g. the
   * container image's (`e2e/image/production-tree.test.ts`).
   */
  readonly command?: readonly [script: string, ...args: string[]];
}

export interface Pod {
  readonly port: number;
  /** `http://<host>:<port>` (127.0.0.1 for a pod listening on every address). */
  readonly url: string;
  /** The environment the pod runs with (without PATH). */
  readonly env: PodEnv;
  /** The current process' pid. */
  readonly pid: number;
  /** Resolves when the current process exits (a restart starts a new one). */
  readonly exited: Promise<PodExit>;
  /** Whether the current process has exited. */
  readonly dead: boolean;
  /** The last 256 KiB of the current process' stdout and stderr. */
  output(): string;
  /** Resolves when the current process' output contains `text`; rejects on exit or timeout. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Sends `signal` (default SIGKILL) and resolves when the process exited. */
  kill(signal?: NodeJS.Signals): Promise<PodExit>;
  /** Kills the process if it still runs, then starts it again on the same port and env. */
  restart(): Promise<void>;
  /** Status of `GET /readyz` now (0 when the pod does not answer). */
  readyz(): Promise<number>;
}

/** The settings of a pod under test (its `env` overrides them). */
export const TEST_POD_ENV: PodEnv = {
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
};

/**
 * Starts `count` pods in parallel with the test settings and `env` (or `env(i)` for pod `i`),
 * each ready within `options.readyTimeoutMs` (default 20 s). Stop them with {@link stopPods}.
 */
export function withPods(
  count: number,
  env: PodEnv | ((index: number) => PodEnv) = {},
  options: PodOptions = {},
): Promise<Pod[]> {
  const envOf = typeof env === "function" ? env : () => env;
  return Promise.all(Array.from({ length: count }, (_, i) => startPod(envOf(i), options)));
}

/** One pod with the test settings, overridden by `env`. */
export function startPod(env: PodEnv = {}, options: PodOptions = {}): Promise<Pod> {
  return launchPod({ ...TEST_POD_ENV, ...env }, options);
}

/** A pod with exactly `env` (plus a free `PORT` unless it has one). */
export async function launchPod(env: PodEnv, options: PodOptions = {}): Promise<Pod> {
  const { readyTimeoutMs = START_TIMEOUT_MS, command = [SERVICE_MAIN], ...childOptions } = options;
  const [script, ...args] = command;
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const fullEnv: PodEnv = { ...env, PORT: String(port) };
  const host = !fullEnv.HOST || fullEnv.HOST === "0.0.0.0" ? "127.0.0.1" : fullEnv.HOST;
  const url = `http://${host}:${port}`;
  const h2c = fullEnv.HTTP2 === "h2c";
  let current!: TestChild;

  const launch = async () => {
    current = startChild(script, args, fullEnv, childOptions);
    try {
      // Without its output piped, /readyz is the only signal.
      const level = (childOptions.stdio ?? "pipe") === "pipe" ? (fullEnv.LOG_LEVEL ?? "info") : "";
      await waitUntilReady(url, current, level, h2c, readyTimeoutMs);
    } catch (error) {
      await current.kill("SIGKILL");
      throw error;
    }
  };

  await launch();
  return {
    port,
    url,
    env: fullEnv,
    get pid() {
      return current.pid;
    },
    get exited() {
      return current.exited;
    },
    get dead() {
      return current.dead;
    },
    output: () => current.output(),
    waitFor: (text, timeoutMs) => current.waitFor(text, timeoutMs),
    kill: (signal = "SIGKILL") => current.kill(signal),
    async restart() {
      await current.kill("SIGKILL");
      await launch();
    },
    readyz: () => status(`${url}/readyz`, h2c),
  };
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
  child: TestChild,
  level: string,
  h2c: boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exitedEarly = () => child.dead;
  const output = () => child.output();
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
