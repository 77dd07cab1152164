/**
 * A real process a test (or script) starts — a pod, a render worker — whose output it can read
 * and await with a deadline. Every process still running when the starting process exits is
 * SIGKILLed (its whole group when detached), so a failing test does not leak processes.
 */
import { type ChildProcess, spawn } from "node:child_process";

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  /** The environment: exactly this, plus PATH (default), or on top of this process' own. */
  readonly inheritEnv?: boolean;
  /** Prefix of the command line, e.g. `["taskset", "-c", "0"]` to pin it to a core. */
  readonly launcher?: readonly string[];
  /** Flags for node before the script (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[];
  /** Its own process group (signals to the group; Ctrl-C of a script does not reach it). */
  readonly detached?: boolean;
  readonly cwd?: string;
  /** Where its stdout and stderr go besides {@link TestChild.output}: inherit, or a file's fd. */
  readonly stdio?: "pipe" | "inherit" | number;
  /** Sees every chunk of output (e.g. to prefix lines with the pod's name). */
  readonly onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
}

export interface TestChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves when it exits. */
  readonly exited: Promise<ChildExit>;
  /** Whether it has exited. */
  readonly dead: boolean;
  /** The last 256 KiB of its stdout and stderr (when piped). */
  output(): string;
  /** Resolves when the output contains `text` (from the start); rejects on exit or timeout. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Sends `signal` (default SIGKILL) unless it exited, and resolves once it has. */
  kill(signal?: NodeJS.Signals): Promise<ChildExit>;
}

const MAX_OUTPUT = 256 * 1024;
const live = new Map<ChildProcess, boolean>();
process.once("exit", () => {
  for (const [child, group] of live) signal(child, "SIGKILL", group);
});

function signal(child: ChildProcess, name: NodeJS.Signals, group: boolean): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    // A detached child leads its own group: whatever it started goes with it.
    if (group) process.kill(-child.pid, name);
    else child.kill(name);
  } catch {
    // already gone
  }
}

/** Starts `node [nodeFlags] script args` (behind `launcher`, if any). */
export function startChild(
  script: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  options: ChildOptions = {},
): TestChild {
  const argv = [...(options.nodeFlags ?? []), script, ...args];
  const [file, ...rest] = [...(options.launcher ?? []), process.execPath, ...argv] as [
    string,
    ...string[],
  ];
  const stdio = options.stdio ?? "pipe";
  const child = spawn(file, rest, {
    env: options.inheritEnv ? { ...process.env, ...env } : { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", stdio, stdio],
    detached: options.detached ?? false,
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  const group = options.detached ?? false;
  let output = "";
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const waiter of [...waiters]) waiter();
  };
  const feed = (stream: "stdout" | "stderr") => (chunk: Buffer) => {
    const text = chunk.toString();
    output = (output + text).slice(-MAX_OUTPUT);
    options.onOutput?.(text, stream);
    wake();
  };
  child.stdout?.on("data", feed("stdout"));
  child.stderr?.on("data", feed("stderr"));
  const dead = () => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once("exit", (code, name) => {
      live.delete(child);
      resolve({ code, signal: name });
      wake();
    });
  });
  const handle: TestChild = {
    child,
    pid: child.pid ?? 0,
    exited,
    get dead() {
      return dead();
    },
    output: () => output,
    waitFor(text, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = typeof text === "string" ? output.includes(text) : text.test(output);
          if (!found && !dead()) return;
          waiters.delete(check);
          clearTimeout(timer);
          if (found) resolve();
          else reject(new Error(`exited without "${text}":\n${output.slice(-4000)}`));
        };
        // The deadline is a timer of its own: it fires whether or not the process prints.
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no "${text}" after ${timeoutMs} ms:\n${output.slice(-4000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    kill(name = "SIGKILL") {
      signal(child, name, group);
      return exited;
    },
  };
  live.set(child, group);
  return handle;
}
