/**
 * The job system's entry point: picks the implementation for the configured mode.
 *
 * - embedded (no Redis): `EmbeddedJobSystem` — a worker-thread pool inside the pod, records in
 *   memory, GIFs in a temp directory.
 * - Redis: `RedisJobSystem` — the pod only queues (BullMQ), reads and cancels; separate
 *   `npm run worker` processes render and publish through the Redis broker.
 */
import type { Hub } from "@realtime/server";
import type { Config } from "../config.ts";
import type { JobSystem } from "./system.ts";
import type { JobLogger, UserPublisher } from "./types.ts";

export type { JobRequest, JobSystem } from "./system.ts";
export { JobLimitError, JobsClosedError } from "./system.ts";

/** A publisher that never throws: a refused event is logged (the status stays queryable). */
export function hubPublisher(hub: Hub, log: JobLogger): UserPublisher {
  return async (userId, event) => {
    try {
      await hub.sendToUser(userId, event);
      return true;
    } catch (error) {
      log.warn({ err: error, type: event.type, jobId: event.jobId }, "job event not published");
      return false;
    }
  };
}

export interface JobSystemDeps {
  readonly hub: Hub;
  readonly log: JobLogger;
}

export async function createJobSystem(config: Config, deps: JobSystemDeps): Promise<JobSystem> {
  const publish = hubPublisher(deps.hub, deps.log);
  if (config.redis.mode === "embedded") {
    const { EmbeddedJobSystem } = await import("./embedded.ts");
    return new EmbeddedJobSystem({ config, publish, log: deps.log });
  }
  const { RedisJobSystem } = await import("./redis-system.ts");
  return new RedisJobSystem({ config, publish, log: deps.log });
}
