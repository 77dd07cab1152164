/**
 * Redis mode, pod side: the pod validates, records and queues jobs (BullMQ, a user's n-th live
 * job at priority n, so users take turns), answers status and media requests from Redis, and
 * cancels. It renders nothing: `npm run worker` processes (`worker.ts`) take jobs from the
 * queue and publish their events through Redis, so a client on any pod sees any worker's
 * progress, and queued jobs survive a pod restart.
 */
import { createRedisClient } from "@realtime/redis";
import { Queue } from "bullmq";
import type { JobSystemConfig } from "./config.ts";
import { JobDesk, type JobDispatch } from "./job-desk.ts";
import {
  cancelChannel,
  jobsRedisTarget,
  type RedisConnection,
  RedisJobStore,
  RedisMediaStore,
} from "./redis-store.ts";
import type { JobLogger, JobRecord, UserPublisher } from "./types.ts";

export const QUEUE_NAME = "video";

/** BullMQ's key prefix: one hash tag, so every queue key shares a Cluster slot. */
export function queuePrefix(prefix: string): string {
  return `{${prefix}-jobs}`;
}

/** What a queue entry carries; the rest is in the job record. */
export interface RenderJobData {
  readonly jobId: string;
  readonly userId: string;
}

export interface RedisJobSystemOptions {
  readonly config: JobSystemConfig;
  readonly publish: UserPublisher;
  readonly log: JobLogger;
}

export class RedisJobSystem extends JobDesk {
  constructor(options: RedisJobSystemOptions) {
    const { config } = options;
    const redis = createRedisClient(jobsRedisTarget(config.redis), {
      role: "jobs",
      name: "realtime-jobs",
    });
    redis.on("error", () => {}); // reported by the requests that fail
    const ttl = config.jobs.resultTtlSeconds;
    super({
      config,
      store: new RedisJobStore(redis, config.redis.prefix, ttl),
      media: new RedisMediaStore(redis, config.redis.prefix, ttl),
      publish: options.publish,
      dispatch: new QueueDispatch(config, redis, options.log),
    });
  }
}

/** Queues jobs in BullMQ for the worker processes. */
class QueueDispatch implements JobDispatch {
  readonly #config: JobSystemConfig;
  readonly #redis: RedisConnection;
  readonly #queue: Queue<RenderJobData>;

  constructor(config: JobSystemConfig, redis: RedisConnection, log: JobLogger) {
    this.#config = config;
    this.#redis = redis;
    this.#queue = new Queue<RenderJobData>(QUEUE_NAME, {
      connection: redis,
      prefix: queuePrefix(config.redis.prefix),
    });
    this.#queue.on("error", (error) => log.warn({ err: error }, "job queue error"));
  }

  async dispatch(record: JobRecord, place: number): Promise<void> {
    await this.#queue.add(
      "render",
      { jobId: record.jobId, userId: record.userId },
      {
        jobId: record.jobId,
        // Users take turns: BullMQ takes lower priorities first (then in order of arrival),
        // so every user's first job starts before anyone's second. FIFO let two users with
        // a queue each make everyone else wait behind them.
        priority: place,
        // Our record is the source of truth; BullMQ keeps failures a while for operators.
        removeOnComplete: true,
        removeOnFail: { age: this.#config.jobs.resultTtlSeconds },
      },
    );
  }

  async cancelled(_userId: string, jobId: string): Promise<void> {
    // A running job: its worker stops at once (and at its next progress check regardless).
    await this.#redis.publish(cancelChannel(this.#config.redis.prefix), jobId);
    // A waiting job: out of the queue (a job that is active is locked and stays; its
    // worker sees the cancelled record and stops).
    await this.#queue.remove(jobId).catch(() => 0);
  }

  async close(): Promise<void> {
    await this.#queue.close().catch(() => {});
    this.#redis.disconnect();
  }
}
