/**
 * Embedded mode (one pod, no Redis): jobs run in a worker-thread pool inside the pod, at most
 * `JOBS_CONCURRENCY` at once, users taking turns ({@link FairQueue}: a user's second job does
 * not start while another user's first waits); events go through the in-memory broker
 * like every other event. Records live in memory and GIFs in a temp directory, so both end
 * with the process: on shutdown, unfinished jobs fail with `server_shutdown` (and their
 * clients hear it before their streams close).
 */
import type { JobsConfig } from "./config.ts";
import { FairQueue } from "./fair-queue.ts";
import { JobDesk, type JobDispatch } from "./job-desk.ts";
import { FileMediaStore, MemoryJobStore } from "./memory-store.ts";
import { WorkerPool } from "./pool.ts";
import { failJob, type JobContext, runJob } from "./runner.ts";
import { mediaUrl } from "./system.ts";
import {
  JobFailureCode,
  type JobLogger,
  type JobRecord,
  type Renderer,
  type UserPublisher,
} from "./types.ts";

export interface EmbeddedJobSystemOptions {
  readonly config: { readonly jobs: JobsConfig };
  readonly publish: UserPublisher;
  readonly log: JobLogger;
  /** Replaces the thread pool (tests wrap it to make a thread die). */
  readonly renderer?: (pool: WorkerPool) => Renderer;
}

const SWEEP_INTERVAL_MS = 60_000;

export class EmbeddedJobSystem extends JobDesk {
  readonly pool: WorkerPool;

  constructor(options: EmbeddedJobSystemOptions) {
    const { config, publish, log } = options;
    const pool = new WorkerPool({
      size: config.jobs.concurrency,
      progressIntervalMs: config.jobs.progressIntervalMs,
    });
    const store = new MemoryJobStore(config.jobs.resultTtlSeconds * 1000);
    const media = new FileMediaStore(config.jobs.mediaDir);
    store.onExpire = (record) => void media.delete(record.userId, record.jobId);
    const ctx: JobContext = {
      store,
      media,
      renderer: options.renderer?.(pool) ?? pool,
      publish,
      log,
      maxAttempts: config.jobs.maxAttempts,
      mediaUrl,
    };
    const dispatch = new ThreadDispatch(config.jobs.concurrency, ctx, store, media, pool);
    super({ config, store, media, publish, dispatch });
    this.pool = pool;
  }
}

/** Runs jobs in the pod's thread pool, users taking turns. */
class ThreadDispatch implements JobDispatch {
  readonly #concurrency: number;
  readonly #ctx: JobContext;
  readonly #store: MemoryJobStore;
  readonly #media: FileMediaStore;
  readonly #pool: WorkerPool;
  readonly #queue = new FairQueue<JobRecord>();
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #sweepTimer: NodeJS.Timeout;
  #closed = false;

  constructor(
    concurrency: number,
    ctx: JobContext,
    store: MemoryJobStore,
    media: FileMediaStore,
    pool: WorkerPool,
  ) {
    this.#concurrency = concurrency;
    this.#ctx = ctx;
    this.#store = store;
    this.#media = media;
    this.#pool = pool;
    this.#sweepTimer = setInterval(() => this.#store.sweep(), SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
  }

  async dispatch(record: JobRecord): Promise<void> {
    this.#queue.push(record.userId, record);
    this.#pump();
  }

  async cancelled(userId: string, jobId: string): Promise<void> {
    this.#queue.remove(userId, (record) => record.jobId === jobId);
    this.#running.get(jobId)?.controller.abort(new Error("cancelled"));
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
    await this.#pool.close();
    this.#media.close();
  }

  /** Starts queued jobs while threads are free. */
  #pump(): void {
    while (!this.#closed && this.#running.size < this.#concurrency) {
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
