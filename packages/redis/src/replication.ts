/**
 * Acknowledgement by replicas: Redis `WAIT` sent right after a script, on its connection. Redis
 * replication is asynchronous, so a master's acknowledgement alone can be undone by a failover
 * — and a master frozen past its Cluster node timeout acknowledges, when it wakes, writes its
 * promoted replica never gets. With `WAIT`, such a write is reported instead of acknowledged.
 */
import type { Redis } from "ioredis";

/** Replicas that must hold a write, and how long to wait for them (ms). */
export interface ReplicaWait {
  readonly replicas: number;
  readonly timeoutMs: number;
}

/**
 * A write (a publish, a presence change) the master accepted but fewer replicas than asked for
 * acknowledged in time. A failover now could lose it, or it may already be lost: it was
 * written by a master that had been replaced without knowing it yet (frozen past its node
 * timeout). Its outcome is unknown: retry it (a publish with its idempotency key).
 */
export class ReplicationTimeout extends Error {
  constructor(acknowledged: number, wait: ReplicaWait) {
    super(
      `the write reached ${acknowledged} of ${wait.replicas} replica(s) within ${wait.timeoutMs} ms: ` +
        "its outcome is unknown (retry it; a publish with its idempotency key)",
    );
    this.name = "ReplicationTimeout";
  }
}

/**
 * The wait asked for by `waitReplicas` / `waitTimeoutMs` options (default 0 replicas, 500 ms),
 * checked; undefined for none. Throws a `TypeError` for a bad value.
 */
export function replicaWait(replicas = 0, timeoutMs = 500): ReplicaWait | undefined {
  if (!Number.isSafeInteger(replicas) || replicas < 0) {
    throw new TypeError(`waitReplicas must be a whole number, got ${replicas}`);
  }
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new TypeError(`waitTimeoutMs must be a positive whole number, got ${timeoutMs}`);
  }
  return replicas > 0 ? { replicas, timeoutMs } : undefined;
}

/** What {@link withWait} needs from a client; both `Redis` and `Cluster` fit. */
export type PipelineClient = Pick<Redis, "pipeline"> & {
  refreshSlotsCache?: (callback?: (error?: Error | null) => void) => void;
};

type Pipeline = ReturnType<Redis["pipeline"]>;

/** Cluster answers that mean the script did not run on this node: safe to send again. */
const REDIRECT = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN)\b/;

/** How many times a redirected pipeline is sent again (after refreshing the slot map). */
const REDIRECT_ATTEMPTS = 3;

/**
 * Sends the script and `WAIT` in one pipeline: `WAIT` has no key, so it follows the script's
 * slot to the same node and connection, and counts the replicas that hold this write.
 *
 * A client follows Cluster redirects for a lone command but not inside a pipeline with a
 * command that is not read-only: a script answered with `MOVED`, `ASK`, `TRYAGAIN` or
 * `CLUSTERDOWN` (it did not run) is sent again, after the slot map is refreshed, a few times.
 */
export async function withWait(
  client: PipelineClient,
  wait: ReplicaWait,
  script: (pipeline: Pipeline) => Pipeline,
): Promise<unknown> {
  for (let attempt = 1; ; attempt++) {
    const results = await script(client.pipeline()).wait(wait.replicas, wait.timeoutMs).exec();
    const [scriptResult, waitResult] = results ?? [];
    if (!scriptResult || !waitResult) throw new Error("the script pipeline was not answered");
    const [error, reply] = scriptResult;
    if (error) {
      if (!REDIRECT.test(error.message) || attempt >= REDIRECT_ATTEMPTS) throw error;
      await refreshSlots(client);
      continue;
    }
    if (waitResult[0]) throw waitResult[0];
    const acknowledged = Number(waitResult[1]);
    if (acknowledged < wait.replicas) throw new ReplicationTimeout(acknowledged, wait);
    return reply;
  }
}

function refreshSlots(client: PipelineClient): Promise<void> {
  const refresh = client.refreshSlotsCache?.bind(client);
  if (!refresh) return new Promise((resolve) => setTimeout(resolve, 100));
  return new Promise((resolve) => refresh(() => resolve()));
}
