/**
 * A render worker for Redis mode (what `npm run worker` runs): takes jobs from the BullMQ
 * queue the pods fill, renders them in its own worker-thread pool (so its event loop stays
 * free to renew queue locks), stores the GIF in Redis and publishes progress and the outcome
 * with a Redis publisher — the same path as every other event, so clients on any pod see
 * them. It runs no hub and serves nothing.
 *
 * A worker that dies (crash, SIGKILL, lost machine) stops renewing its jobs' locks; another
 * worker's stalled check puts each such job back in the queue, and the next attempt goes on
 * from the progress already reported. After `JOBS_MAX_ATTEMPTS` the job fails with
 * `worker_lost` and its client hears `generation_failed`: no job stays "running" while any
 * worker is up.
 */
import { createRedisClient, createRedisPublisher } from "@realtime/redis";
import { Worker } from "bullmq";
import type { JobSystemConfig } from "./config.ts";
import { WorkerPool } from "./pool.ts";
import { cancelChannel, jobsRedisTarget, RedisJobStore, RedisMediaStore } from "./redis-store.ts";
import { QUEUE_NAME, queuePrefix, type RenderJobData } from "./redis-system.ts";
import { failJob, type JobContext, runJob } from "./runner.ts";
import { mediaUrl } from "./system.ts";
import { JobFailureCode, type JobLogger, userPublisher } from "./types.ts";

export interface RenderWorkerOptions {
  /** The pods' configuration; `redis.mode` must not be `"embedded"`. */
  readonly config: JobSystemConfig & {
    /** The pods' `CHANNEL_IDLE_TTL_MS`: keys this worker's publishes touch live no longer. */
    readonly channels: { readonly idleTtlMs: number };
  };
  readonly log: JobLogger;
}

export interface RenderWorker {
  /**
   * Stops taking jobs, lets running ones finish (BullMQ's close waits for them), and releases
   * threads and connections. A job cut off by the process exiting first is retried by another
   * worker once its lock expires.
   */
  close(): Promise<void>;
}

/** Starts taking jobs; resolves once the queue worker is ready. */
export async function startRenderWorker(options: RenderWorkerOptions): Promise<RenderWorker> {
  const { config, log } = options;
  if (config.redis.mode === "embedded") {
    throw new RangeError("a render worker needs Redis (REDIS_URL or REDIS_CLUSTER_NODES)");
  }
  const publisher = createRedisPublisher({
    url: config.redis.url ?? undefined,
    clusterNodes: config.redis.mode === "cluster" ? [...config.redis.clusterNodes] : undefined,
    prefix: config.redis.prefix,
    // As the pods': keys this worker's publishes touch live no longer than theirs.
    metaTtlSeconds: Math.ceil(config.channels.idleTtlMs / 1000),
    waitReplicas: config.redis.waitReplicas,
    waitTimeoutMs: config.redis.waitTimeoutMs,
    logger: {
      info: (message) => log.info({ component: "redis-broker" }, message),
      warn: (message) => log.warn({ component: "redis-broker" }, message),
      error: (message) => log.error({ component: "redis-broker" }, message),
    },
  });
  // BullMQ workers need connections that wait out an outage (`maxRetriesPerRequest: null`).
  const target = jobsRedisTarget(config.redis);
  const redis = createRedisClient(target, { role: "queue", name: "realtime-worker" });
  redis.on("error", (error) => log.warn({ err: error }, "redis error"));
  const ttl = config.jobs.resultTtlSeconds;
  const pool = new WorkerPool({
    size: config.jobs.concurrency,
    progressIntervalMs: config.jobs.progressIntervalMs,
  });
  const ctx: JobContext = {
    store: new RedisJobStore(redis, config.redis.prefix, ttl),
    media: new RedisMediaStore(redis, config.redis.prefix, ttl),
    renderer: pool,
    publish: userPublisher(publisher, log),
    log,
    maxAttempts: config.jobs.maxAttempts,
    mediaUrl,
  };

  /** Jobs this process renders now → how to stop them. */
  const running = new Map<string, AbortController>();
  const subscriber = createRedisClient(target, { role: "queue", name: "realtime-worker-sub" });
  subscriber.on("error", (error) => log.warn({ err: error }, "redis subscriber error"));
  subscriber.on("message", (_channel: string, jobId: string) => {
    running.get(jobId)?.abort(new Error("cancelled"));
  });
  await subscriber.subscribe(cancelChannel(config.redis.prefix));

  const worker = new Worker<RenderJobData>(
    QUEUE_NAME,
    async (job, _token, signal) => {
      const { jobId, userId } = job.data;
      const controller = new AbortController();
      // BullMQ aborts when this worker lost the job's lock (another worker may have it now).
      const lockLost = () => controller.abort(signal?.reason);
      signal?.addEventListener("abort", lockLost, { once: true });
      running.set(jobId, controller);
      log.info({ jobId }, "job taken");
      try {
        const outcome = await runJob(ctx, userId, jobId, controller.signal);
        log.info({ jobId, outcome }, "job ended");
        return outcome;
      } finally {
        running.delete(jobId);
        signal?.removeEventListener("abort", lockLost);
      }
    },
    {
      connection: redis,
      prefix: queuePrefix(config.redis.prefix),
      concurrency: config.jobs.concurrency,
      lockDuration: config.jobs.lockMs,
      stalledInterval: config.jobs.lockMs,
      // Each stall is a lost worker; the record's attempt counter enforces the same budget.
      maxStalledCount: config.jobs.maxAttempts - 1,
    },
  );
  worker.on("error", (error) => log.warn({ err: error }, "queue worker error"));
  worker.on("failed", (job, error) => {
    if (!job) return;
    const stalled = /stalled/.test(error.message);
    const code = stalled ? JobFailureCode.WorkerLost : JobFailureCode.Internal;
    const message = stalled
      ? `the worker died on each of ${config.jobs.maxAttempts} attempt(s)`
      : "the job failed";
    log.warn({ jobId: job.data.jobId, err: error }, "job failed in the queue");
    failJob(ctx, job.data, code, message).catch((err: unknown) =>
      log.error({ err, jobId: job.data.jobId }, "could not record the failure"),
    );
  });
  await worker.waitUntilReady();

  return {
    async close() {
      await worker.close().catch(() => {});
      await pool.close();
      await publisher.close();
      subscriber.disconnect();
      redis.disconnect();
    },
  };
}
