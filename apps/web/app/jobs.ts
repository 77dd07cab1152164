/**
 * The page's jobs: their shape, and what an event of the user's channel makes of one (pure;
 * the store keeps them).
 */
import { EventType, type RealtimeEvent } from "@realtime/protocol";

export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

export interface JobResult {
  readonly url: string;
  readonly width: number;
  readonly height: number;
  readonly frames: number;
  readonly bytes: number;
}

export interface Job {
  readonly jobId: string;
  /** "" until known (a job learnt of from its events alone). */
  readonly prompt: string;
  readonly aspectRatio: string;
  readonly status: JobStatus;
  readonly progress: number;
  readonly message: string;
  readonly result?: JobResult;
  readonly error?: { readonly code: string; readonly message: string };
}

/** `GET /api/jobs/:jobId` and `DELETE` answer with this. */
export interface JobView {
  readonly jobId: string;
  readonly status: JobStatus;
  readonly progress: number;
  readonly prompt: string;
  readonly aspectRatio: string;
  readonly result?: JobResult;
  readonly error?: { code: string; message: string };
}

export const TERMINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

/**
 * `job` after `event` of its user channel, or null when the event is not about a job's state.
 * Progress never goes down (a late event of an earlier attempt).
 */
export function jobAfterEvent(job: Job, event: RealtimeEvent): Job | null {
  const message = typeof event.message === "string" ? event.message : "";
  switch (event.type) {
    case EventType.GenerationProgress: {
      const progress = isNumber(event.progress)
        ? Math.max(job.progress, event.progress)
        : job.progress;
      return { ...job, status: "running", progress, message: message || job.message };
    }
    case EventType.GenerationComplete: {
      const result = parseResult(event.result);
      return {
        ...job,
        status: "completed",
        progress: 100,
        message: "Done",
        ...(result && { result }),
      };
    }
    case EventType.GenerationFailed: {
      const code = typeof event.code === "string" ? event.code : "internal";
      return { ...job, status: "failed", message, error: { code, message } };
    }
    case EventType.GenerationCancelled:
      return { ...job, status: "cancelled", message: message || "Cancelled" };
    default:
      return null;
  }
}

export function isNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function parseResult(value: unknown): JobResult | undefined {
  const result = value as Partial<JobResult> | null;
  if (!result || typeof result.url !== "string") return undefined;
  return {
    url: result.url,
    width: isNumber(result.width) ? result.width : 0,
    height: isNumber(result.height) ? result.height : 0,
    frames: isNumber(result.frames) ? result.frames : 0,
    bytes: isNumber(result.bytes) ? result.bytes : 0,
  };
}
