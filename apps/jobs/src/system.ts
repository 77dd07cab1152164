/** The job system as the routes see it (see `index.ts` for the implementations). */
import type { JobsConfig } from "./config.ts";
import { frameSize } from "./render.ts";
import type { JobRecord, RenderSpec } from "./types.ts";

/** Frame duration of every animation, in ms (12.5 frames per second). */
export const FRAME_DELAY_MS = 80;

/** What a client asks for. */
export interface JobRequest {
  readonly prompt: string;
  readonly aspectRatio: string;
}

export interface JobSystem {
  /** Queues a job; throws {@link JobLimitError} or {@link JobsClosedError}. */
  submit(userId: string, request: JobRequest): Promise<JobRecord>;
  get(userId: string, jobId: string): Promise<JobRecord | null>;
  /** Cancels a queued or running job; the record afterwards, or null when there is none. */
  cancel(userId: string, jobId: string): Promise<JobRecord | null>;
  /** The finished GIF of a job of `userId`, or null. */
  media(userId: string, jobId: string): Promise<Buffer | null>;
  /** Stops taking jobs and releases threads and connections. */
  close(): Promise<void>;
}

/** The user already has the most jobs queued or running that the limit allows. */
export class JobLimitError extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`at most ${limit} job(s) may be queued or running at once`);
    this.name = "JobLimitError";
    this.limit = limit;
  }
}

/** The job system is closing (the pod drains). */
export class JobsClosedError extends Error {
  constructor() {
    super("the job system is shutting down");
    this.name = "JobsClosedError";
  }
}

export function specFor(config: { readonly jobs: JobsConfig }, request: JobRequest): RenderSpec {
  return {
    prompt: request.prompt,
    aspectRatio: request.aspectRatio,
    ...frameSize(request.aspectRatio, config.jobs.frameSize),
    frames: config.jobs.frames,
    delayMs: FRAME_DELAY_MS,
  };
}

export function mediaUrl(jobId: string): string {
  return `/api/media/${jobId}`;
}
