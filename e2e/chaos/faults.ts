/**
 * The fault schedule: a list drawn from the seed before anything runs (which fault, on what,
 * for how long, how long after the previous one), then played against the {@link Stage} while
 * traffic flows. At most two faults are in force at once and never two on one target (a pod,
 * its link, Redis, the CPUs); a fault whose target is busy waits its turn, so the list — not
 * the timing — is what a seed reproduces.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { redisCli } from "@realtime/testkit/redis";
import type { Random } from "./random.ts";
import type { FaultRecord } from "./run-log.ts";
import { seconds } from "./run-log.ts";
import type { Stage } from "./stage.ts";

export const FAULT_NAMES = [
  "pod-kill",
  "pod-stop",
  "pod-term",
  "pubsub-kill",
  "redis-empty",
  "redis-rdb",
  "redis-stop",
  "blackhole",
  "failover",
  "cpu",
] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

/** Faults that need a single Redis (its RDB, its proxies) or a Cluster (replicas). */
export const SINGLE_ONLY: readonly FaultName[] = ["redis-empty", "redis-rdb", "blackhole"];
export const CLUSTER_ONLY: readonly FaultName[] = ["failover"];

/** The Cluster's `cluster-node-timeout` (test-redis.ts): a master frozen longer is replaced. */
const NODE_TIMEOUT_MS = 5_000;
const MAX_CONCURRENT = 2;

/** One drawn fault: everything random about it is decided here, from the schedule's stream. */
interface PlannedFault {
  readonly name: FaultName;
  /** Wait after the previous fault started. */
  readonly gapMs: number;
  /** A pod index, for pod faults and black holes. */
  readonly pod: number;
  /** The main duration: down time, frozen time, hog time. */
  readonly ms: number;
  /** redis-rdb: how long the snapshot is left behind before the restart. */
  readonly aheadMs: number;
  /** Which replica (failover) or master (Cluster redis-stop), as an index into the current list. */
  readonly pick: number;
}

export interface ScheduleOptions {
  readonly stage: Stage;
  readonly random: Random;
  readonly faults: readonly FaultName[];
  /** ms since the run started. */
  readonly clock: () => number;
  readonly record: (fault: FaultRecord) => void;
  readonly log: (line: string) => void;
}

export class FaultSchedule {
  readonly #options: ScheduleOptions;
  readonly #busy = new Set<string>();
  readonly #active = new Set<Promise<void>>();
  #injected = 0;
  #error: unknown = null;

  constructor(options: ScheduleOptions) {
    this.#options = options;
  }

  /** Faults started so far. */
  get injected(): number {
    return this.#injected;
  }

  /** Names of the faults in force now. */
  readonly inForce = new Set<string>();

  /**
   * Injects faults until `endAt` (ms since the start) or `signal`, then waits for those in
   * force to be over. Rejects when a fault could not be undone (Redis or a pod did not come
   * back): the run cannot go on.
   */
  async run(endAt: number, signal: AbortSignal): Promise<void> {
    const { clock, random, faults } = this.#options;
    let lastStart = clock();
    while (!signal.aborted && this.#error === null && faults.length > 0) {
      const plan = this.#draw(random, faults);
      const due = lastStart + plan.gapMs;
      if (due >= endAt) break;
      await sleepUntil(clock, due, signal);
      // Wait for a free slot and a free target (the plan stays the same).
      while (
        !signal.aborted &&
        this.#error === null &&
        (this.#active.size >= MAX_CONCURRENT || this.#locks(plan).some((l) => this.#busy.has(l)))
      ) {
        await Promise.race([...this.#active, sleep(200)]);
      }
      if (signal.aborted || this.#error !== null || clock() >= endAt) break;
      lastStart = clock();
      this.#start(plan);
    }
    await Promise.all(this.#active);
    if (this.#error !== null) throw this.#error;
  }

  #draw(random: Random, faults: readonly FaultName[]): PlannedFault {
    return {
      name: random.pick(faults),
      gapMs: random.between(1_000, 5_000),
      pod: random.int(0, this.#options.stage.pods.length - 1),
      ms: random.between(1_000, 8_000),
      aheadMs: random.between(500, 4_000),
      pick: random.int(0, 1_000),
    };
  }

  #locks(plan: PlannedFault): string[] {
    switch (plan.name) {
      case "pod-kill":
      case "pod-stop":
      case "pod-term":
        return [`pod:${plan.pod}`];
      case "blackhole":
        return [`link:${plan.pod}`];
      case "cpu":
        return ["cpu"];
      default:
        return ["redis"];
    }
  }

  #start(plan: PlannedFault): void {
    const { clock, record, log } = this.#options;
    const locks = this.#locks(plan);
    for (const lock of locks) this.#busy.add(lock);
    const n = ++this.#injected;
    const job = (async () => {
      const fault: FaultRecord = {
        name: plan.name,
        target: this.#target(plan),
        start: clock(),
        end: null,
        losesData:
          plan.name === "redis-empty" ||
          plan.name === "redis-rdb" ||
          (plan.name === "redis-stop" && this.#options.stage.cluster && plan.ms >= NODE_TIMEOUT_MS),
      };
      record(fault);
      const label = `fault #${n} ${plan.name} ${fault.target}`;
      this.inForce.add(label);
      log(`${seconds(fault.start)} ${label}: ${this.#describe(plan)}`);
      try {
        await this.#act(plan);
      } catch (error) {
        this.#error ??= new Error(`${label} could not be undone: ${String(error)}`);
      } finally {
        fault.end = clock();
        this.inForce.delete(label);
        for (const lock of locks) this.#busy.delete(lock);
        log(
          `${seconds(fault.end)} ${label}: over after ${((fault.end - fault.start) / 1000).toFixed(1)}s`,
        );
      }
    })();
    const tracked = job.finally(() => this.#active.delete(tracked));
    this.#active.add(tracked);
  }

  #target(plan: PlannedFault): string {
    if (plan.name.startsWith("pod-") || plan.name === "blackhole") return `pod${plan.pod}`;
    if (plan.name === "cpu") return "cpus";
    return this.#options.stage.cluster ? "cluster" : "redis";
  }

  #describe(plan: PlannedFault): string {
    const s = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
    switch (plan.name) {
      case "pod-kill":
        return `SIGKILL, restart after ${s(plan.ms / 3)}`;
      case "pod-stop":
        return `SIGSTOP for ${s(plan.ms)}`;
      case "pod-term":
        return `SIGTERM (drain), restart after ${s(plan.ms / 4)}`;
      case "pubsub-kill":
        return "CLIENT KILL TYPE pubsub";
      case "redis-empty":
        return `SIGKILL, back empty after ${s(plan.ms / 3)}`;
      case "redis-rdb":
        return `SAVE, ${s(plan.aheadMs)} more writes, SIGKILL, back from the RDB after ${s(plan.ms / 4)}`;
      case "redis-stop":
        return `SIGSTOP${this.#options.stage.cluster ? " a master" : ""} for ${s(plan.ms)}`;
      case "blackhole":
        return "its Redis connections go silent";
      case "failover":
        return "CLUSTER FAILOVER on a replica";
      case "cpu":
        return `a busy process per core for ${s(plan.ms)}`;
    }
  }

  async #act(plan: PlannedFault): Promise<void> {
    const { stage } = this.#options;
    const pod = stage.pods[plan.pod];
    switch (plan.name) {
      case "pod-kill":
        await pod?.kill("SIGKILL");
        await sleep(plan.ms / 3);
        await pod?.restart();
        return;
      case "pod-stop": {
        if (!pod) return;
        stage.freeze(pod.pid);
        await sleep(plan.ms);
        stage.thaw(pod.pid);
        return;
      }
      case "pod-term": {
        if (!pod) return;
        const timer = setTimeout(() => void pod.kill("SIGKILL"), 15_000);
        await pod.kill("SIGTERM");
        clearTimeout(timer);
        await sleep(plan.ms / 4);
        await pod.restart();
        return;
      }
      case "pubsub-kill":
        for (const port of await this.#masters()) {
          await redisCli(port, "CLIENT", "KILL", "TYPE", "pubsub");
        }
        await sleep(2_000);
        return;
      case "redis-empty": {
        const redis = stage.redis;
        if (!redis) return;
        rmSync(join(stage.redisDir, "dump.rdb"), { force: true });
        await redis.kill();
        await sleep(plan.ms / 3);
        await redis.restart();
        return;
      }
      case "redis-rdb": {
        const redis = stage.redis;
        if (!redis) return;
        // What Redis acknowledges after the snapshot is lost when it comes back from it.
        await redisCli(redis.port, "SAVE");
        await sleep(plan.aheadMs);
        await redis.kill();
        await sleep(plan.ms / 4);
        await redis.restart();
        rmSync(join(stage.redisDir, "dump.rdb"), { force: true });
        return;
      }
      case "redis-stop": {
        const ports = await this.#masters();
        const port = ports[plan.pick % ports.length] as number;
        const info = await redisCli(port, "INFO", "server");
        const pid = Number(/process_id:(\d+)/.exec(info)?.[1] ?? 0);
        stage.freeze(pid);
        await sleep(plan.ms);
        stage.thaw(pid);
        if (stage.cluster) await this.#clusterSettled();
        return;
      }
      case "blackhole":
        stage.proxies[plan.pod]?.blackhole();
        // The pod notices within ~7 s (its liveness probe) and replaces the connections.
        await sleep(10_000);
        return;
      case "failover": {
        const cluster = stage.redisCluster;
        if (!cluster) return;
        const { replicas } = await cluster.topology();
        const replica = replicas[plan.pick % replicas.length];
        if (replica) await cluster.failover(replica.port);
        await this.#clusterSettled();
        return;
      }
      case "cpu": {
        const stop = stage.hogCpus();
        await sleep(plan.ms);
        stop();
        return;
      }
    }
  }

  /** The masters' ports (the single Redis's, or the Cluster's as it sees itself now). */
  async #masters(): Promise<number[]> {
    const { stage } = this.#options;
    if (stage.redis) return [stage.redis.port];
    return (await stage.redisCluster?.topology())?.masters ?? [];
  }

  /** Waits until the Cluster has 3 masters with a replica each again (after a failover). */
  async #clusterSettled(): Promise<void> {
    const cluster = this.#options.stage.redisCluster;
    if (!cluster) return;
    const deadline = performance.now() + 60_000;
    for (;;) {
      const topology = await cluster.topology().catch(() => null);
      if (topology && topology.masters.length === 3 && topology.replicas.length === 3) {
        const synced = await Promise.all(
          topology.replicas.map(async (r) =>
            (await redisCli(r.port, "INFO", "replication").catch(() => "")).includes(
              "master_link_status:up",
            ),
          ),
        );
        if (synced.every(Boolean)) return;
      }
      if (performance.now() > deadline) throw new Error("the Cluster did not settle in 60 s");
      await sleep(250);
    }
  }
}

async function sleepUntil(clock: () => number, at: number, signal: AbortSignal): Promise<void> {
  const wait = at - clock();
  if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => {});
}
