/**
 * Redis mode, pod side: the pod validates, records and queues jobs (BullMQ, a user's n-th live
 * job at priority n, so users take turns), answers status and media requests from Redis, and
 * cancels. It renders nothing: `npm run worker` processes
 * (`worker-main.ts`) take jobs from the queue and publish their events through the Redis
 * broker, so a client on any pod sees any worker's progress, and queued jobs survive a pod
 * restart.
 */
import { Queue } from "bullmq";
import type { Config } from "../config.ts";
import {
  cancelChannel,
  connectRedis,
  type RedisConnection,
  RedisJobStore,
  RedisMediaStore,
} from "./redis-store.ts";
import { cancelJob, failJob } from "./runner.ts";
import {
  JobLimitError,
  type JobRequest,
  type JobSystem,
  JobsClosedError,
  specFor,
} from "./system.ts";
import {
  JobFailureCode,
  type JobLogger,
  type JobRecord,
  newJobId,
  type UserPublisher,
} from "./types.ts";

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
  readonly config: Pick<Config, "jobs" | "redis">;
  readonly publish: UserPublisher;
  readonly log: JobLogger;
}

export class RedisJobSystem implements JobSystem {
  readonly #config: Pick<Config, "jobs" | "redis">;
  readonly #redis: RedisConnection;
  readonly #queue: Queue<RenderJobData>;
  readonly #store: RedisJobStore;
  readonly #media: RedisMediaStore;
  readonly #publish: UserPublisher;
  readonly #log: JobLogger;
  #closed = false;

  constructor(options: RedisJobSystemOptions) {
    const { config } = options;
    this.#config = config;
    this.#publish = options.publish;
    this.#log = options.log;
    this.#redis = connectRedis(config.redis, { name: "realtime-jobs" });
    this.#redis.on("error", () => {}); // reported by the requests that fail
    const ttl = config.jobs.resultTtlSeconds;
    this.#store = new RedisJobStore(this.#redis, config.redis.prefix, ttl);
    this.#media = new RedisMediaStore(this.#redis, config.redis.prefix, ttl);
    this.#queue = new Queue<RenderJobData>(QUEUE_NAME, {
      connection: this.#redis,
      prefix: queuePrefix(config.redis.prefix),
    });
    this.#queue.on("error", (error) => this.#log.warn({ err: error }, "job queue error"));
  }

  async submit(userId: string, request: JobRequest): Promise<JobRecord> {
    if (this.#closed) throw new JobsClosedError();
    const now = Date.now();
    const record: JobRecord = {
      jobId: newJobId(),
      userId,
      status: "queued",
      progress: 0,
      attempt: 0,
      spec: specFor(this.#config, request),
      createdAt: now,
      updatedAt: now,
    };
    const { maxPerUser, resultTtlSeconds } = this.#config.jobs;
    const place = await this.#store.create(record, maxPerUser);
    if (place === 0) throw new JobLimitError(maxPerUser);
    try {
      await this.#queue.add(
        "render",
        { jobId: record.jobId, userId },
        {
          jobId: record.jobId,
          // Users take turns: BullMQ takes lower priorities first (then in order of arrival),
          // so every user's first job starts before anyone's second. FIFO let two users with
          // a queue each make everyone else wait behind them.
          priority: place,
          // Our record is the source of truth; BullMQ keeps failures a while for operators.
          removeOnComplete: true,
          removeOnFail: { age: resultTtlSeconds },
        },
      );
    } catch (error) {
      const ctx = { store: this.#store, publish: this.#publish };
      await failJob(ctx, record, JobFailureCode.Internal, "the job could not be queued").catch(
        () => {},
      );
      throw error;
    }
    return record;
  }

  get(userId: string, jobId: string): Promise<JobRecord | null> {
    return this.#store.get(userId, jobId);
  }

  async cancel(userId: string, jobId: string): Promise<JobRecord | null> {
    const outcome = await cancelJob({ store: this.#store, publish: this.#publish }, userId, jobId);
    if (outcome?.cancelled) {
      // A running job: its worker stops at once (and at its next progress check regardless).
      await this.#redis.publish(cancelChannel(this.#config.redis.prefix), jobId);
      // A waiting job: out of the queue (a job that is active is locked and stays; its
      // worker sees the cancelled record and stops).
      await this.#queue.remove(jobId).catch(() => 0);
    }
    return outcome?.record ?? null;
  }

  media(userId: string, jobId: string): Promise<Buffer | null> {
    return this.#media.get(userId, jobId);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue.close().catch(() => {});
    this.#redis.disconnect();
  }
}
