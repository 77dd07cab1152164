/**
 * Embedded mode (one pod, no Redis): jobs run in a worker-thread pool inside the pod, at most
 * `JOBS_CONCURRENCY` at once, users taking turns ({@link FairQueue}: a user's second job does
 * not start while another user's first waits); events go through the in-memory broker
 * like every other event. Records live in memory and GIFs in a temp directory, so both end
 * with the process: on shutdown, unfinished jobs fail with `server_shutdown` (and their
 * clients hear it before their streams close).
 */
import type { Config } from "../config.ts";
import { FairQueue } from "./fair-queue.ts";
import { FileMediaStore, MemoryJobStore } from "./memory-store.ts";
import { WorkerPool } from "./pool.ts";
import { cancelJob, failJob, type JobContext, runJob } from "./runner.ts";
import {
  JobLimitError,
  type JobRequest,
  type JobSystem,
  JobsClosedError,
  mediaUrl,
  specFor,
} from "./system.ts";
import {
  JobFailureCode,
  type JobLogger,
  type JobRecord,
  newJobId,
  type Renderer,
  type UserPublisher,
} from "./types.ts";

export interface EmbeddedJobSystemOptions {
  readonly config: Pick<Config, "jobs">;
  readonly publish: UserPublisher;
  readonly log: JobLogger;
  /** Replaces the thread pool (tests wrap it to make a thread die). */
  readonly renderer?: (pool: WorkerPool) => Renderer;
}

const SWEEP_INTERVAL_MS = 60_000;

export class EmbeddedJobSystem implements JobSystem {
  readonly pool: WorkerPool;
  readonly #config: Pick<Config, "jobs">;
  readonly #store: MemoryJobStore;
  readonly #media: FileMediaStore;
  readonly #ctx: JobContext;
  readonly #queue = new FairQueue<JobRecord>();
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #sweepTimer: NodeJS.Timeout;
  #closed = false;

  constructor(options: EmbeddedJobSystemOptions) {
    const { config, publish, log } = options;
    this.#config = config;
    this.pool = new WorkerPool({
      size: config.jobs.concurrency,
      progressIntervalMs: config.jobs.progressIntervalMs,
    });
    this.#store = new MemoryJobStore(config.jobs.resultTtlSeconds * 1000);
    this.#media = new FileMediaStore(config.jobs.mediaDir);
    this.#store.onExpire = (record) => void this.#media.delete(record.userId, record.jobId);
    this.#ctx = {
      store: this.#store,
      media: this.#media,
      renderer: options.renderer?.(this.pool) ?? this.pool,
      publish,
      log,
      maxAttempts: config.jobs.maxAttempts,
      mediaUrl,
    };
    this.#sweepTimer = setInterval(() => this.#store.sweep(), SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
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
    const { maxPerUser } = this.#config.jobs;
    if ((await this.#store.create(record, maxPerUser)) === 0) throw new JobLimitError(maxPerUser);
    this.#queue.push(userId, record);
    this.#pump();
    return record;
  }

  get(userId: string, jobId: string): Promise<JobRecord | null> {
    return this.#store.get(userId, jobId);
  }

  async cancel(userId: string, jobId: string): Promise<JobRecord | null> {
    const outcome = await cancelJob(this.#ctx, userId, jobId);
    if (outcome?.cancelled) {
      this.#queue.remove(userId, (record) => record.jobId === jobId);
      this.#running.get(jobId)?.controller.abort(new Error("cancelled"));
    }
    return outcome?.record ?? null;
  }

  media(userId: string, jobId: string): Promise<Buffer | null> {
    return this.#media.get(userId, jobId);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#queue.clear();
    for (const record of this.#store.active()) {
      await failJob(
        this.#ctx,
        record,
        JobFailureCode.Shutdown,
        "the server stopped before the job finished",
      );
    }
    for (const { controller } of this.#running.values()) controller.abort(new Error("shutdown"));
    await Promise.all([...this.#running.values()].map((r) => r.done));
    await this.pool.close();
    this.#media.close();
  }

  /** Starts queued jobs while threads are free. */
  #pump(): void {
    while (!this.#closed && this.#running.size < this.#config.jobs.concurrency) {
      const next = this.#queue.take();
      if (!next) return;
      const record = next.item;
      const controller = new AbortController();
      const done = runJob(this.#ctx, record.userId, record.jobId, controller.signal)
        .then(
          () => {},
          async (error: unknown) => {
            this.#ctx.log.error({ err: error, jobId: record.jobId }, "job failed unexpectedly");
            await failJob(this.#ctx, record, JobFailureCode.Internal, "the job failed").catch(
              () => {},
            );
          },
        )
        .finally(() => {
          this.#running.delete(record.jobId);
          this.#queue.done(record.userId);
          this.#pump();
        });
      this.#running.set(record.jobId, { controller, done });
    }
  }
}
