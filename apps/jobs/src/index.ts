/**
 * `@realtime/jobs`: async render jobs (a prompt in, an animated GIF out, progress on the
 * user's SSE channel). The service serves the HTTP routes and gets the system from
 * {@link createJobSystem}; the implementation follows the configured mode:
 *
 * - embedded (no Redis): `EmbeddedJobSystem` — a worker-thread pool inside the pod, records in
 *   memory, GIFs in a temp directory.
 * - Redis: `RedisJobSystem` — the pod only queues (BullMQ), reads and cancels; separate
 *   `npm run worker` processes ({@link startRenderWorker}) render and publish through Redis.
 */
import type { JobSystemConfig } from "./config.ts";
import type { JobSystem } from "./system.ts";
import { type JobLogger, type UserChannelSender, userPublisher } from "./types.ts";
import type { RenderWorker, RenderWorkerOptions } from "./worker.ts";

export type { JobSystemConfig, JobsConfig, JobsRedisConfig } from "./config.ts";
export type { EmbeddedJobSystem } from "./embedded.ts";
export { ASPECT_RATIOS } from "./render.ts";
export type { JobRequest, JobSystem } from "./system.ts";
export { JobLimitError, JobsClosedError } from "./system.ts";
export type { JobLogger, JobRecord, JobView, UserChannelSender } from "./types.ts";
export { JOB_ID_PATTERN, toView } from "./types.ts";
export type { RenderWorker, RenderWorkerOptions } from "./worker.ts";

export interface JobSystemDeps {
  /** Where job events go: the pod's hub (`user:<userId>` channels). */
  readonly events: UserChannelSender;
  readonly log: JobLogger;
}

export async function createJobSystem(
  config: JobSystemConfig,
  deps: JobSystemDeps,
): Promise<JobSystem> {
  const publish = userPublisher(deps.events, deps.log);
  if (config.redis.mode === "embedded") {
    const { EmbeddedJobSystem } = await import("./embedded.ts");
    return new EmbeddedJobSystem({ config, publish, log: deps.log });
  }
  const { RedisJobSystem } = await import("./redis-system.ts");
  return new RedisJobSystem({ config, publish, log: deps.log });
}

/** A render worker process's work (`npm run worker`): Redis mode only. */
export async function startRenderWorker(options: RenderWorkerOptions): Promise<RenderWorker> {
  const { startRenderWorker: start } = await import("./worker.ts");
  return start(options);
}
