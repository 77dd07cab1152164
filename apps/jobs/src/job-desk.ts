/**
 * Job submission, status, cancellation and media — the one implementation of {@link JobSystem}
 * both modes share. What differs is where an accepted job goes to be rendered, the
 * {@link JobDispatch}:
 *
 * - embedded (`embedded.ts`): a worker-thread pool in the pod, users taking turns;
 * - Redis (`redis-system.ts`): a BullMQ queue that `npm run worker` processes take jobs from.
 *
 * The record is stored first (the store enforces the per-user limit atomically), then handed
 * to the dispatch; a job that cannot be queued fails explicitly, with its event, so no record
 * stays "queued" with nothing behind it.
 */
import type { JobsConfig } from "./config.ts";
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
  type JobRecord,
  type JobStore,
  type MediaStore,
  newJobId,
  type UserPublisher,
} from "./types.ts";

/** Where accepted jobs are rendered. */
export interface JobDispatch {
  /**
   * Takes a job that was just stored as queued; `place` is its place among the user's queued
   * and running jobs (1: the only one). Rejects when the job cannot be queued.
   */
  dispatch(record: JobRecord, place: number): Promise<void>;
  /** The job was cancelled (its event is out): stop its work, queued or running. */
  cancelled(userId: string, jobId: string): Promise<void>;
  /** No more jobs come: stop the work and release threads and connections. */
  close(): Promise<void>;
}

export interface JobDeskOptions {
  readonly config: { readonly jobs: JobsConfig };
  readonly store: JobStore;
  readonly media: MediaStore;
  readonly publish: UserPublisher;
  readonly dispatch: JobDispatch;
}

export class JobDesk implements JobSystem {
  readonly #config: { readonly jobs: JobsConfig };
  readonly #store: JobStore;
  readonly #media: MediaStore;
  readonly #publish: UserPublisher;
  readonly #dispatch: JobDispatch;
  #closed = false;

  constructor(options: JobDeskOptions) {
    this.#config = options.config;
    this.#store = options.store;
    this.#media = options.media;
    this.#publish = options.publish;
    this.#dispatch = options.dispatch;
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
    const place = await this.#store.create(record, maxPerUser);
    if (place === 0) throw new JobLimitError(maxPerUser);
    try {
      await this.#dispatch.dispatch(record, place);
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
    if (outcome?.cancelled) await this.#dispatch.cancelled(userId, jobId);
    return outcome?.record ?? null;
  }

  media(userId: string, jobId: string): Promise<Buffer | null> {
    return this.#media.get(userId, jobId);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#dispatch.close();
  }
}
