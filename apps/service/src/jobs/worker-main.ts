/**
 * `npm run worker`: a render worker process for Redis mode. Takes jobs from the BullMQ queue
 * the pods fill, renders them in its own worker-thread pool (so its event loop stays free to
 * renew queue locks), stores the GIF in Redis and publishes progress and the outcome through
 * the Redis broker — the same path as every other event, so clients on any pod see them.
 *
 * A worker that dies (crash, SIGKILL, lost machine) stops renewing its jobs' locks; another
 * worker's stalled check puts each such job back in the queue, and the next attempt goes on
 * from the progress already reported. After `JOBS_MAX_ATTEMPTS` the job fails with
 * `worker_lost` and its client hears `generation_failed`: no job stays "running" while any
 * worker is up. Same environment as the pods (`REDIS_URL`/`REDIS_CLUSTER_NODES`, `JOBS_*`).
 */
import { RedisBroker } from "@realtime/redis";
import { Hub } from "@realtime/server";
import { Worker } from "bullmq";
import pino from "pino";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import { hubPublisher } from "./index.ts";
import { WorkerPool } from "./pool.ts";
import { cancelChannel, connectRedis, RedisJobStore, RedisMediaStore } from "./redis-store.ts";
import { QUEUE_NAME, queuePrefix, type RenderJobData } from "./redis-system.ts";
import { failJob, type JobContext, runJob } from "./runner.ts";
import { mediaUrl } from "./system.ts";
import { JobFailureCode } from "./types.ts";

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`realtime worker: ${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}
if (config.redis.mode === "embedded") {
  console.error(
    "realtime worker: set REDIS_URL or REDIS_CLUSTER_NODES (in embedded mode the pod renders jobs itself)",
  );
  process.exit(78);
}

const log = pino({ level: config.logLevel, name: "realtime-worker" });
const brokerLog = log.child({ component: "redis-broker" });
const broker = new RedisBroker({
  url: config.redis.url ?? undefined,
  clusterNodes: config.redis.mode === "cluster" ? [...config.redis.clusterNodes] : undefined,
  prefix: config.redis.prefix,
  // As the pods': keys this worker's publishes touch live no longer than theirs.
  metaTtlSeconds: Math.ceil(config.channels.idleTtlMs / 1000),
  waitReplicas: config.redis.waitReplicas,
  waitTimeoutMs: config.redis.waitTimeoutMs,
  logger: {
    info: (message) => brokerLog.info(message),
    warn: (message) => brokerLog.warn(message),
    error: (message) => brokerLog.error(message),
  },
});
// Only for publishing: events get the same envelope and checks as a pod's.
const hub = new Hub({ broker, positionCheckIntervalMs: 0 });
const redis = connectRedis(config.redis, { name: "realtime-worker", waitForever: true });
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
  publish: hubPublisher(hub, log),
  log,
  maxAttempts: config.jobs.maxAttempts,
  mediaUrl,
};

/** Jobs this process renders now → how to stop them. */
const running = new Map<string, AbortController>();
const subscriber = connectRedis(config.redis, { name: "realtime-worker-sub", waitForever: true });
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
log.info(
  { concurrency: config.jobs.concurrency, lockMs: config.jobs.lockMs },
  "realtime worker is ready",
);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info(`${signal}: finishing running jobs`);
    // Running jobs get the drain time to finish; after that their locks expire and another
    // worker retries them.
    const deadline = setTimeout(() => process.exit(0), config.shutdown.drainMs);
    void (async () => {
      await worker.close().catch(() => {});
      await pool.close();
      await hub.close();
      await broker.close();
      subscriber.disconnect();
      redis.disconnect();
      clearTimeout(deadline);
      process.exit(0);
    })();
  });
}
