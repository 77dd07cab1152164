/**
 * Test helper: real processes — pods (`main.ts`) and render workers (`worker-main.ts`) — whose
 * output tests can await with a deadline. Every process still running when the test process
 * exits is SIGKILLed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { SERVICE_MAIN, WORKER_MAIN } from "./entry-points.ts";
import { freePort } from "./redis/index.ts";

export const PROCESS_SECRET = "jobs-secret-jobs-secret-jobs-secret-0123";

export interface TestProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  output(): string;
  /** Resolves when the output contains `text` (from the start), rejects after `timeoutMs`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Sends `signal` and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

function start(file: string, env: Record<string, string>): TestProcess {
  const child = spawn(process.execPath, [file], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      live.delete(child);
      resolve();
    }),
  );
  let output = "";
  const waiters = new Set<() => void>();
  const feed = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-256 * 1024);
    for (const wake of [...waiters]) wake();
  };
  child.stdout?.on("data", feed);
  child.stderr?.on("data", feed);
  return {
    pid: child.pid ?? 0,
    child,
    output: () => output,
    waitFor(text, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = typeof text === "string" ? output.includes(text) : text.test(output);
          if (!found && child.exitCode === null && child.signalCode === null) return;
          waiters.delete(check);
          clearTimeout(timer);
          if (found) resolve();
          else reject(new Error(`exited without "${text}":\n${output.slice(-4000)}`));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no "${text}" after ${timeoutMs} ms:\n${output.slice(-4000)}`));
        }, timeoutMs);
        waiters.add(check);
        child.once("exit", check);
        check();
      });
    },
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** A pod on a free port; resolves once it logged that it is ready. */
export async function startPodProcess(
  env: Record<string, string>,
): Promise<TestProcess & { url: string }> {
  const port = await freePort();
  const proc = start(SERVICE_MAIN, {
    NODE_ENV: "test",
    LOG_LEVEL: "info",
    HOST: "127.0.0.1",
    JWT_SECRET: PROCESS_SECRET,
    SHUTDOWN_DRAIN_MS: "200",
    ...env,
    PORT: String(port),
  });
  await proc.waitFor("realtime is ready");
  return Object.assign(proc, { url: `http://127.0.0.1:${port}` });
}

/** A render worker process (`npm run worker`); resolves once it takes jobs. */
export async function startWorkerProcess(env: Record<string, string>): Promise<TestProcess> {
  const proc = start(WORKER_MAIN, { NODE_ENV: "test", LOG_LEVEL: "info", ...env });
  await proc.waitFor("realtime worker is ready");
  return proc;
}
