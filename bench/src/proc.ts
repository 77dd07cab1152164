/**
 * What the bench reads about server processes from /proc: CPU time of a whole process tree
 * (every thread, nanosecond resolution from schedstat) and resident memory.
 */
import { readdirSync, readFileSync } from "node:fs";

/** The pids of `root` and all its descendants (nginx master + workers, a wrapper + node). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const stat = readText(`/proc/${entry}/stat`);
    if (!stat) continue;
    // The command name is in parentheses and may contain spaces: the fields start after ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    const pid = queue[i] as number;
    out.push(pid);
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return out;
}

/** CPU time (user + system, all threads) of the given processes, in nanoseconds. */
export function cpuNs(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // gone
    }
    for (const task of tasks) {
      const text = readText(`/proc/${pid}/task/${task}/schedstat`);
      if (text) total += Number(text.split(" ")[0]);
    }
  }
  return total;
}

/** Resident set size of the given processes, in bytes. */
export function rssBytes(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) {
    const text = readText(`/proc/${pid}/status`);
    const match = text ? /VmRSS:\s+([0-9]+) kB/.exec(text) : null;
    if (match) total += Number(match[1]) * 1024;
  }
  return total;
}

/** Open file descriptors of a process (for the capacity scenario's report). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return null;
  }
}

/** A CPU meter over a process tree: `start()`, then `stop()` returns ns used in between. */
export class CpuMeter {
  readonly #root: number;
  #pids: number[] = [];
  #startNs = 0;
  #startWall = 0n;

  constructor(root: number) {
    this.#root = root;
  }

  start(): void {
    this.#pids = processTree(this.#root);
    this.#startNs = cpuNs(this.#pids);
    this.#startWall = process.hrtime.bigint();
  }

  /** CPU ns used since `start()` and the wall-clock ns that passed. */
  stop(): { cpuNs: number; wallNs: number } {
    const cpu = cpuNs(this.#pids) - this.#startNs;
    return { cpuNs: cpu, wallNs: Number(process.hrtime.bigint() - this.#startWall) };
  }
}
