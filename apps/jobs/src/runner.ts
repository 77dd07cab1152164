/**
 * The life of one job, shared by the embedded pod and the Redis worker process:
 *
 *     queued ──start──▶ running ──▶ completed | failed | cancelled
 *
 * - Every transition is a compare-and-set in the {@link JobStore}; only the party that moves a
 *   job to a terminal status publishes its terminal event, so a client sees exactly one.
 * - Progress is measured (frames encoded / total), reported at a bounded rate by the render
 *   thread, stored only when it rises (also across retries) and published only then.
 * - A worker that dies costs one attempt; after `maxAttempts` the job fails with
 *   `worker_lost`. The attempt counter lives in the record, so it also counts attempts of
 *   worker processes that were killed.
 */
import { EventType } from "@realtime/protocol";
import { percentOf } from "./progress.ts";
import {
  JobFailureCode,
  type JobLogger,
  type JobRecord,
  type JobStore,
  type MediaResult,
  type MediaStore,
  RenderError,
  type Renderer,
  type UserPublisher,
  WorkerLostError,
} from "./types.ts";

export interface JobContext {
  readonly store: JobStore;
  readonly media: MediaStore;
  readonly renderer: Renderer;
  readonly publish: UserPublisher;
  readonly log: JobLogger;
  /** Attempts a job gets when its worker dies. */
  readonly maxAttempts: number;
  /** The URL under which the finished GIF of `jobId` is served. */
  readonly mediaUrl: (jobId: string) => string;
}

export type JobOutcome = "completed" | "failed" | "cancelled";

type AttemptOutcome = JobOutcome | "lost";

/**
 * Runs the job until it is terminal: attempt after attempt while its worker thread dies and
 * attempts remain. Resolves with how it ended (for "cancelled", someone else published).
 * Rejects only when the store or media store fails (the caller fails the job explicitly).
 */
export async function runJob(
  ctx: JobContext,
  userId: string,
  jobId: string,
  signal?: AbortSignal,
): Promise<JobOutcome> {
  for (;;) {
    if (signal?.aborted) return "cancelled";
    const record = await ctx.store.start(userId, jobId);
    if (!record) return "cancelled";
    if (record.attempt > ctx.maxAttempts) {
      const message = `the worker died on each of ${ctx.maxAttempts} attempt(s)`;
      return (await failJob(ctx, record, JobFailureCode.WorkerLost, message))
        ? "failed"
        : "cancelled";
    }
    const outcome = await attempt(ctx, record, signal);
    if (outcome !== "lost") return outcome;
  }
}

async function attempt(
  ctx: JobContext,
  record: JobRecord,
  signal: AbortSignal | undefined,
): Promise<AttemptOutcome> {
  const { userId, jobId, spec } = record;
  const local = new AbortController();
  const stop = () => local.abort(signal?.reason);
  signal?.addEventListener("abort", stop, { once: true });
  await ctx.publish(userId, {
    type: EventType.GenerationProgress,
    jobId,
    progress: record.progress,
    message:
      record.attempt > 1
        ? `worker lost; retrying (attempt ${record.attempt} of ${ctx.maxAttempts})`
        : `rendering ${spec.frames} frames at ${spec.width}x${spec.height}`,
    attempt: record.attempt,
  });
  // Progress updates are applied one after another, in the order the thread measured them.
  let chain = Promise.resolve();
  const onProgress = (done: number, total: number) => {
    const progress = percentOf(done, total);
    chain = chain
      .then(async () => {
        if (local.signal.aborted) return;
        const outcome = await ctx.store.progress(userId, jobId, progress);
        if (outcome === "terminal") {
          local.abort(new Error("the job ended elsewhere"));
        } else if (outcome === "raised") {
          await ctx.publish(userId, {
            type: EventType.GenerationProgress,
            jobId,
            progress,
            message: `encoded ${done} of ${total} frames`,
          });
        }
      })
      .catch((error: unknown) => ctx.log.warn({ err: error, jobId }, "progress update failed"));
  };
  try {
    const output = await ctx.renderer.render(spec, {
      signal: local.signal,
      onProgress,
      attempt: record.attempt,
    });
    await chain;
    if (local.signal.aborted) return "cancelled";
    await ctx.media.put(userId, jobId, output.bytes);
    const result: MediaResult = {
      url: ctx.mediaUrl(jobId),
      width: output.width,
      height: output.height,
      frames: output.frames,
      bytes: output.bytes.byteLength,
    };
    const done = await ctx.store.finish(userId, jobId, { status: "completed", result });
    if (!done) {
      // Cancelled while the file was being stored: the cancellation was already announced.
      await ctx.media.delete(userId, jobId);
      return "cancelled";
    }
    await ctx.publish(userId, { type: EventType.GenerationComplete, jobId, result });
    ctx.log.info({ jobId, bytes: result.bytes, attempt: record.attempt }, "job completed");
    return "completed";
  } catch (error) {
    await chain;
    if (local.signal.aborted) return "cancelled";
    if (error instanceof WorkerLostError) {
      ctx.log.warn({ jobId, attempt: record.attempt, err: error }, "render worker lost");
      return "lost";
    }
    if (error instanceof RenderError) {
      ctx.log.error({ jobId, err: error }, "render failed");
      const failed = await failJob(ctx, record, JobFailureCode.RenderFailed, "rendering failed");
      return failed ? "failed" : "cancelled";
    }
    throw error;
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

/** Fails a job and publishes `generation_failed` if this call won the transition. */
export async function failJob(
  ctx: Pick<JobContext, "store" | "publish">,
  record: Pick<JobRecord, "userId" | "jobId">,
  code: string,
  message: string,
): Promise<boolean> {
  const failed = await ctx.store.finish(record.userId, record.jobId, {
    status: "failed",
    error: { code, message },
  });
  if (!failed) return false;
  await ctx.publish(record.userId, {
    type: EventType.GenerationFailed,
    jobId: record.jobId,
    code,
    message,
  });
  return true;
}

/**
 * Cancels a queued or running job and publishes `generation_cancelled` if this call won.
 * Returns the record after the call (unchanged when the job had already ended), or null when
 * the user has no such job. Stopping the work is the caller's part.
 */
export async function cancelJob(
  ctx: Pick<JobContext, "store" | "publish">,
  userId: string,
  jobId: string,
): Promise<{ record: JobRecord; cancelled: boolean } | null> {
  const cancelled = await ctx.store.finish(userId, jobId, { status: "cancelled" });
  if (cancelled) {
    await ctx.publish(userId, {
      type: EventType.GenerationCancelled,
      jobId,
      message: "cancelled by the user",
    });
    return { record: cancelled, cancelled: true };
  }
  const record = await ctx.store.get(userId, jobId);
  return record ? { record, cancelled: false } : null;
}
