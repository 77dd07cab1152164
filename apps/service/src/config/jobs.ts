/** `config.jobs`: the video-generation demo's queue, renders and results. */
import { availableParallelism } from "node:os";
import type { JobsConfig } from "@realtime/jobs";
import type { EnvReader } from "./env.ts";

export type { JobsConfig };

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
