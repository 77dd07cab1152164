/**
 * The bench's side of the load generator: worker processes pinned to the generator's core,
 * driven over IPC, and the pool of loopback source addresses their sockets bind to (one
 * address has ~28k ephemeral ports; the bench never puts more than {@link PER_ADDRESS} on one,
 * and never reuses an address within a run, so ports left in TIME_WAIT never collide).
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { Histogram } from "./histogram.ts";
import type { OpenCommand, OpenResult, StatsResult, StormStatsResult } from "./worker.ts";

/** The core the load generator (this process and its workers) runs on. */
export const GENERATOR_CPU = "1";
/**
 * Whether processes are pinned to cores (servers on 0, generator on 1): on machines with two
 * or more cores and `taskset`, unless `BENCH_NO_PIN=1` (the smoke test sets it).
 */
export const PIN =
  process.env.BENCH_NO_PIN !== "1" && cpus().length >= 2 && existsSync("/usr/bin/taskset");
/** A log line prefixed with the seconds since `started` (each bench command's progress). */
export function elapsedLog(started = Date.now()): (line: string) => void {
  return (line) =>
    console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);
}

/**
 * Moves this process, and so everything it forks (the generator's workers), to the generator
 * core when {@link PIN}; otherwise says so through `log`.
 */
export function pinToGeneratorCore(log: (line: string) => void): void {
  if (!PIN) {
    log("not pinning processes to cores (fewer than 2 cores, no taskset, or BENCH_NO_PIN=1)");
    return;
  }
  execFileSync("/usr/bin/taskset", ["-a", "-pc", GENERATOR_CPU, String(process.pid)], {
    stdio: "ignore",
  });
}
/** Most connections one source address carries. */
const PER_ADDRESS = 8_000;
/** Most sockets one worker holds (the fd cap is 20,000 per process). */
export const PER_WORKER = 9_500;
const RPC_TIMEOUT_MS = 180_000;

let addressIndex = 2;
let addressLeft = PER_ADDRESS;

/** Source addresses for `n` connections: 127.0.0.2, .3, … (then 127.0.1.x …). */
export function takeAddresses(n: number): { ip: string; n: number }[] {
  const out: { ip: string; n: number }[] = [];
  let left = n;
  for (let guard = 0; left > 0 && guard < 10_000; guard++) {
    const take = Math.min(left, addressLeft);
    if (take > 0) out.push({ ip: addressOf(addressIndex), n: take });
    left -= take;
    addressLeft -= take;
    if (addressLeft === 0) {
      addressIndex++;
      addressLeft = PER_ADDRESS;
    }
  }
  return out;
}

/** Moves to a fresh source address (so the next scenario starts clean). */
export function freshAddress(): void {
  if (addressLeft < PER_ADDRESS) {
    addressIndex++;
    addressLeft = PER_ADDRESS;
  }
}

function addressOf(index: number): string {
  const third = Math.floor(index / 254);
  const fourth = (index % 254) + 1;
  if (third > 255) throw new Error("out of loopback source addresses");
  return `127.0.${third}.${fourth}`;
}

class WorkerHandle {
  readonly child: ChildProcess;
  #ids = 0;
  readonly #waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();

  constructor() {
    const script = fileURLToPath(new URL("./worker.ts", import.meta.url));
    // `taskset -c 1 node worker.ts`: the IPC channel survives the exec.
    this.child = fork(
      script,
      [],
      PIN
        ? {
            execPath: "/usr/bin/taskset",
            execArgv: ["-c", GENERATOR_CPU, process.execPath],
            stdio: ["ignore", "inherit", "inherit", "ipc"],
          }
        : { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] },
    );
    this.child.on("message", (message: { id: number; value: unknown }) => {
      const waiter = this.#waiting.get(message.id);
      if (!waiter) return;
      this.#waiting.delete(message.id);
      waiter.resolve(message.value);
    });
    this.child.on("error", () => {});
    this.child.on("exit", (code) => {
      for (const waiter of this.#waiting.values()) {
        waiter.reject(new Error(`load generator worker exited (${code})`));
      }
      this.#waiting.clear();
    });
  }

  call<T>(cmd: unknown): Promise<T> {
    const id = ++this.#ids;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error("load generator worker did not answer in time"));
      }, RPC_TIMEOUT_MS);
      this.#waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (!this.child.connected) {
        clearTimeout(timer);
        this.#waiting.delete(id);
        reject(new Error("load generator worker is gone"));
        return;
      }
      this.child.send({ id, cmd });
    });
  }
}

export interface OpenOptions {
  host: string;
  port: number;
  paths: string[];
  headers?: Record<string, string>;
  count: number;
  /**
   * Global index of the first subscriber (default 0): subscriber `g` listens to
   * `paths[g % paths.length]`, so opens on several servers can split one numbering.
   */
  first?: number;
  concurrency?: number;
  timeoutMs?: number;
  /** HTTP/2: sessions in total (spread over the workers). */
  h2Sessions?: number;
  /**
   * Reconnect storm: track cursors and resume every stream that ends on `targets` (round
   * robin, each worker starting at its own) with `Last-Event-ID`.
   */
  storm?: { targets: { host: string; port: number }[]; honourRetry: boolean };
}

export interface StormProgress {
  tracked: number;
  dropped: number;
  resumed: number;
  gaveUp: number;
}

export interface Stats extends Omit<StatsResult, "latency"> {
  latency: Histogram;
}

export class Generator {
  readonly #workers: WorkerHandle[];
  #next = 0;

  private constructor(workers: WorkerHandle[]) {
    this.#workers = workers;
  }

  static start(workers: number): Generator {
    return new Generator(Array.from({ length: workers }, () => new WorkerHandle()));
  }

  get pids(): number[] {
    return this.#workers.map((w) => w.child.pid as number);
  }

  /** Opens `count` subscribers, spread over the workers. */
  async open(options: OpenOptions): Promise<OpenResult> {
    const n = this.#workers.length;
    const parts: Promise<OpenResult>[] = [];
    let first = options.first ?? 0;
    for (let w = 0; w < n; w++) {
      const count = Math.floor(options.count / n) + (w < options.count % n ? 1 : 0);
      if (count > PER_WORKER) throw new Error(`${count} sockets exceed one worker's budget`);
      const sessions =
        options.h2Sessions === undefined
          ? undefined
          : Math.max(1, Math.round((options.h2Sessions * count) / options.count));
      const cmd: OpenCommand = {
        op: "open",
        host: options.host,
        port: options.port,
        paths: options.paths,
        headers: options.headers ?? {},
        first,
        count,
        addresses: takeAddresses(sessions ?? count),
        concurrency: Math.max(1, Math.ceil((options.concurrency ?? 256) / n)),
        timeoutMs: options.timeoutMs ?? 15_000,
        h2Sessions: sessions,
        storm: options.storm && {
          // Each worker starts the round robin at its own target.
          targets: options.storm.targets.map(
            (_, i, all) => all[(i + w) % all.length] as { host: string; port: number },
          ),
          // Fresh addresses for the resumes (and a retry each): never a port in TIME_WAIT.
          addresses: takeAddresses(count * 2),
          honourRetry: options.storm.honourRetry,
        },
      };
      first += count;
      const worker = this.#workers[(this.#next + w) % n] as WorkerHandle;
      parts.push(worker.call<OpenResult>(cmd));
    }
    this.#next++;
    const results = await Promise.all(parts);
    const total: OpenResult = {
      ok: 0,
      status503: 0,
      retryAfter: 0,
      otherStatus: 0,
      errors: 0,
      timeouts: 0,
      ms: 0,
      firstError: null,
    };
    for (const r of results) {
      total.ok += r.ok;
      total.status503 += r.status503;
      total.retryAfter += r.retryAfter;
      total.otherStatus += r.otherStatus;
      total.errors += r.errors;
      total.timeouts += r.timeouts;
      total.ms = Math.max(total.ms, r.ms);
      total.firstError ??= r.firstError;
    }
    return total;
  }

  /** Starts a measurement: latency is recorded for events with seq ≥ `minSeq`. */
  async arm(minSeq: number): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.call({ op: "arm", minSeq })));
  }

  /**
   * Merged counts; `expected[channel]` is how many events each subscriber of it should have
   * (with `fromSeq`: it should have sequence numbers `fromSeq … expected[channel]`).
   */
  async stats(expected: number[], fromSeq?: number): Promise<Stats> {
    const parts = await Promise.all(
      this.#workers.map((w) => w.call<StatsResult>({ op: "stats", expected, fromSeq })),
    );
    const latency = new Histogram();
    const out: Stats = {
      open: 0,
      events: 0,
      missing: 0,
      incomplete: 0,
      reordered: 0,
      dups: 0,
      closedEarly: 0,
      bytes: 0,
      lastEventUs: 0,
      firstEventUs: 0,
      latency,
    };
    for (const p of parts) {
      out.open += p.open;
      out.events += p.events;
      out.missing += p.missing;
      out.incomplete += p.incomplete;
      out.reordered += p.reordered;
      out.dups += p.dups;
      out.closedEarly += p.closedEarly;
      out.bytes += p.bytes;
      out.lastEventUs = Math.max(out.lastEventUs, p.lastEventUs);
      if (p.firstEventUs > 0) {
        out.firstEventUs =
          out.firstEventUs === 0 ? p.firstEventUs : Math.min(out.firstEventUs, p.firstEventUs);
      }
      latency.merge(p.latency);
    }
    return out;
  }

  /** Reconnect storm: events published from `fromUs` on are kept with their publish time. */
  async stormArm(fromUs: number): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.call({ op: "stormArm", fromUs })));
  }

  async stormProgress(): Promise<StormProgress> {
    const parts = await Promise.all(
      this.#workers.map((w) => w.call<StormProgress>({ op: "stormProgress" })),
    );
    const out: StormProgress = { tracked: 0, dropped: 0, resumed: 0, gaveUp: 0 };
    for (const p of parts) {
      out.tracked += p.tracked;
      out.dropped += p.dropped;
      out.resumed += p.resumed;
      out.gaveUp += p.gaveUp;
    }
    return out;
  }

  /** Per-subscriber outcomes; `acks[channel][seq]` = when the publish of `seq` was acknowledged. */
  async stormStats(acks: number[][]): Promise<StormStatsResult> {
    const parts = await Promise.all(
      this.#workers.map((w) => w.call<StormStatsResult>({ op: "stormStats", acks })),
    );
    const out: StormStatsResult = {
      outcomes: [],
      resets: 0,
      attempts: 0,
      failedAttempts: 0,
      gaveUp: 0,
      firstFailure: null,
    };
    for (const p of parts) {
      for (const o of p.outcomes) out.outcomes.push(o);
      out.resets += p.resets;
      out.attempts += p.attempts;
      out.failedAttempts += p.failedAttempts;
      out.gaveUp += p.gaveUp;
      out.firstFailure ??= p.firstFailure;
    }
    return out;
  }

  /** Latency of the events published in [fromUs, toUs] (kept since {@link stormArm}). */
  async stormLatency(fromUs: number, toUs: number): Promise<Histogram> {
    const parts = await Promise.all(
      this.#workers.map((w) =>
        w.call<ReturnType<Histogram["toSparse"]>>({ op: "stormLatency", fromUs, toUs }),
      ),
    );
    const h = new Histogram();
    for (const p of parts) h.merge(p);
    return h;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.call({ op: "closeAll" })));
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#workers.map(async (w) => {
        await w.call({ op: "exit" }).catch(() => {});
        if (w.child.exitCode === null) w.child.kill("SIGKILL");
      }),
    );
  }
}
