/** `config.jobs`: the video-generation demo's queue, renders and results. */
import { availableParallelism } from "node:os";
import type { EnvReader } from "./env.ts";

export interface JobsConfig {
  /** Jobs one user may have queued or running at once (`JOBS_MAX_PER_USER`). Default 2. */
  readonly maxPerUser: number;
  /**
   * Renders at once per process (`JOBS_CONCURRENCY`): worker threads of the embedded pod, or
   * of one `npm run worker` process. Default: CPUs − 1, at least 1, at most 4.
   */
  readonly concurrency: number;
  /** Frames per animation (`JOBS_FRAMES`). Default 24. */
  readonly frames: number;
  /** Long side of the animation in pixels (`JOBS_FRAME_SIZE`). Default 320. */
  readonly frameSize: number;
  /** Least time between two progress events of one job, in ms (`JOBS_PROGRESS_INTERVAL_MS`). Default 250. */
  readonly progressIntervalMs: number;
  /** Attempts a job gets when its worker dies (`JOBS_MAX_ATTEMPTS`). Default 2. */
  readonly maxAttempts: number;
  /**
   * Redis mode: the queue lock of a running job, in ms (`JOBS_LOCK_MS`); a job whose worker
   * stopped renewing it is retried (or failed) after about this long to twice this. Default 30000.
   */
  readonly lockMs: number;
  /** How long finished jobs and their GIFs are kept, in seconds (`JOBS_RESULT_TTL_SECONDS`). Default 3600. */
  readonly resultTtlSeconds: number;
  /** Embedded mode: directory for GIFs (`JOBS_MEDIA_DIR`). Default null: a temp dir removed on exit. */
  readonly mediaDir: string | null;
}

export function readJobs(r: EnvReader): JobsConfig {
  return {
    maxPerUser: r.int("JOBS_MAX_PER_USER", 2),
    concurrency: r.int("JOBS_CONCURRENCY", defaultJobConcurrency(), 1, 64),
    frames: r.int("JOBS_FRAMES", 24, 1, 600),
    frameSize: r.int("JOBS_FRAME_SIZE", 320, 16, 1280),
    progressIntervalMs: r.int("JOBS_PROGRESS_INTERVAL_MS", 250, 0),
    maxAttempts: r.int("JOBS_MAX_ATTEMPTS", 2, 1, 10),
    lockMs: r.int("JOBS_LOCK_MS", 30000, 500),
    resultTtlSeconds: r.int("JOBS_RESULT_TTL_SECONDS", 3600),
    mediaDir: r.raw("JOBS_MEDIA_DIR") ?? null,
  };
}

/** Render threads by default: leave one CPU to the event loop, use at most 4. */
export function defaultJobConcurrency(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}
