/**
 * Shared shapes of the job system: what a job is, what a client sees of it, and the seams
 * (store, media, renderer, publisher) that let the same job logic run in the embedded pod
 * (worker threads) and in the Redis worker process (BullMQ).
 */
import { randomBytes } from "node:crypto";
import type { EventInput } from "@realtime/server";

export const JOB_STATUSES = ["queued", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export type TerminalStatus = "completed" | "failed" | "cancelled";

export function isTerminal(status: JobStatus): status is TerminalStatus {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** What is rendered: fixed when the job is accepted, so any worker renders the same thing. */
export interface RenderSpec {
  readonly prompt: string;
  readonly aspectRatio: string;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  /** Frame duration in the GIF, in ms. */
  readonly delayMs: number;
}

/** A finished render, as the completion event and the status carry it (never the bytes). */
export interface MediaResult {
  readonly url: string;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  readonly bytes: number;
}

export interface JobFailure {
  /** One of {@link JobFailureCode}. */
  readonly code: string;
  readonly message: string;
}

/** `code` of `generation_failed` events and of `error` in the job status. */
export const JobFailureCode = {
  /** The renderer threw: the input cannot be rendered (not retried). */
  RenderFailed: "render_failed",
  /** The worker (thread or process) died on every allowed attempt. */
  WorkerLost: "worker_lost",
  /** The embedded pod stopped while the job ran; its work died with it. */
  Shutdown: "server_shutdown",
  /** Anything else (storage or queue unavailable); details are in the worker's log. */
  Internal: "internal",
} as const;

export interface JobRecord {
  readonly jobId: string;
  readonly userId: string;
  readonly status: JobStatus;
  /** Highest progress reported so far, 0–100: it never goes down, also across retries. */
  readonly progress: number;
  /** Attempts started so far (0 while queued). */
  readonly attempt: number;
  readonly spec: RenderSpec;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly result?: MediaResult;
  readonly error?: JobFailure;
}

/** `GET /api/jobs/:jobId`. */
export interface JobView {
  jobId: string;
  status: JobStatus;
  progress: number;
  attempt: number;
  prompt: string;
  aspectRatio: string;
  createdAt: string;
  updatedAt: string;
  result?: MediaResult;
  error?: JobFailure;
}

export function toView(record: JobRecord): JobView {
  const view: JobView = {
    jobId: record.jobId,
    status: record.status,
    progress: record.progress,
    attempt: record.attempt,
    prompt: record.spec.prompt,
    aspectRatio: record.spec.aspectRatio,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
  };
  if (record.result) view.result = record.result;
  if (record.error) view.error = record.error;
  return view;
}

/** How a terminal transition is described to the store. */
export type Finish =
  | { readonly status: "completed"; readonly result: MediaResult }
  | { readonly status: "failed"; readonly error: JobFailure }
  | { readonly status: "cancelled" };

/** Outcome of {@link JobStore.progress}. */
export type ProgressOutcome = "raised" | "unchanged" | "terminal";

/**
 * Job records. Every transition is a compare-and-set, so exactly one party wins the move to
 * a terminal status, and only the winner publishes the terminal event.
 */
export interface JobStore {
  /**
   * Stores a new queued job unless the user already has `maxActive` queued or running. Resolves
   * with the job's place among the user's queued and running jobs (1: the only one), 0 when
   * refused.
   */
  create(record: JobRecord, maxActive: number): Promise<number>;
  /** The record, or null when it does not exist or belongs to someone else. */
  get(userId: string, jobId: string): Promise<JobRecord | null>;
  /** queued/running → running with `attempt + 1`; null when the job is terminal or gone. */
  start(userId: string, jobId: string): Promise<JobRecord | null>;
  /** Raises the progress of a running job; never lowers it. */
  progress(userId: string, jobId: string, progress: number): Promise<ProgressOutcome>;
  /** Non-terminal → terminal. Returns the new record, or null when another party won. */
  finish(userId: string, jobId: string, finish: Finish): Promise<JobRecord | null>;
}

/** Where rendered files live. The media id is the job id; only the owner can read it. */
export interface MediaStore {
  put(userId: string, jobId: string, bytes: Uint8Array): Promise<void>;
  get(userId: string, jobId: string): Promise<Buffer | null>;
  delete(userId: string, jobId: string): Promise<void>;
}

export interface RenderOutput {
  readonly bytes: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
}

export interface RenderOptions {
  /** Aborting stops the work at once (the worker thread is terminated). */
  readonly signal?: AbortSignal;
  /** Frames encoded so far, at a bounded rate (see `ProgressThrottle`), and always at the end. */
  readonly onProgress?: (framesDone: number, framesTotal: number) => void;
  /** 1 for the first try; retries after a lost worker count up. */
  readonly attempt?: number;
  /** Tests only: the worker thread exits abruptly before encoding this frame. */
  readonly crashAtFrame?: number;
}

/** Runs a render off the calling thread. */
export interface Renderer {
  render(spec: RenderSpec, options?: RenderOptions): Promise<RenderOutput>;
}

/** The worker running a render died before it answered (thread exit, out of memory). */
export class WorkerLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkerLostError";
  }
}

/** The renderer itself failed (a bug or an input it cannot handle); retrying will not help. */
export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RenderError";
  }
}

/** Publishes an event on `user:<userId>`; resolves false (and logs) when the broker refused. */
export type UserPublisher = (userId: string, event: EventInput) => Promise<boolean>;

/** Anything that publishes on a user's channel: a pod's `Hub`, or a `RedisPublisher`. */
export interface UserChannelSender {
  sendToUser(userId: string, event: EventInput): Promise<unknown>;
}

/** A {@link UserPublisher} that never throws: a refused event is logged (the status stays queryable). */
export function userPublisher(sender: UserChannelSender, log: JobLogger): UserPublisher {
  return async (userId, event) => {
    try {
      await sender.sendToUser(userId, event);
      return true;
    } catch (error) {
      log.warn({ err: error, type: event.type, jobId: event.jobId }, "job event not published");
      return false;
    }
  };
}

export interface JobLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `j_` + 20 random base-62 characters (~119 bits): unguessable, URL- and key-safe. */
export function newJobId(): string {
  let id = "j_";
  while (id.length < 22) {
    for (const byte of randomBytes(24)) {
      if (byte < 248 && id.length < 22) id += BASE62[byte % 62];
    }
  }
  return id;
}

export const JOB_ID_PATTERN = /^j_[0-9A-Za-z]{20}$/;
