/**
 * The Redis client the security layer counts in (rate limits, per-user stream counts): one
 * per pod, standalone or Cluster after the broker's configuration, separate from the broker's
 * own connections so a limit check never queues behind a publish. Its options are the `limits`
 * profile of `createRedisClient` (`@realtime/redis`).
 */
import {
  createRedisClient,
  credentialsOf,
  type RedisClient,
  watchConnection,
} from "@realtime/redis";
import type { RedisConfig } from "../config.ts";

export type LimitsRedis = RedisClient;

/** How long one limit command may take before the request goes on without it, in ms. */
const COMMAND_TIMEOUT_MS = 1000;
/** How long start-up waits for the connection before serving anyway (limits then fail open). */
const READY_TIMEOUT_MS = 5000;

/** A client for `config`, or null in embedded mode (limits are then counted in memory). */
export async function createLimitsRedis(
  config: RedisConfig,
  log: { warn(message: string): void },
): Promise<LimitsRedis | null> {
  if (config.mode === "embedded") return null;
  const profile = {
    role: "limits",
    name: "realtime-limits",
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
  } as const;
  // In cluster mode `REDIS_URL` may carry the credentials of every node.
  const client: LimitsRedis =
    config.mode === "cluster"
      ? createRedisClient({ nodes: config.clusterNodes, ...credentialsOf(config.url) }, profile)
      : createRedisClient(config.url ?? "", profile);
  let lastWarning = 0;
  client.on("error", (error: Error) => {
    const now = Date.now();
    if (now - lastWarning < 10_000) return;
    lastWarning = now;
    log.warn(`limits redis: ${error.message}`);
  });
  // A partitioned connection would time every limit check out (and fail it open) for good.
  const unwatch = watchConnection(client, {
    onStale: (reason) => log.warn(`limits redis: ${reason}`),
  });
  client.once("end", unwatch);
  await waitReady(client);
  return client;
}

function waitReady(client: LimitsRedis): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off("ready", done);
      resolve();
    };
    const timer = setTimeout(done, READY_TIMEOUT_MS);
    client.on("ready", done);
  });
}

/** Closes the client without waiting for a Redis that may be gone. */
export async function closeLimitsRedis(client: LimitsRedis | null): Promise<void> {
  if (!client) return;
  try {
    await Promise.race([
      client.quit(),
      new Promise((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
  } catch {
    // already closed
  } finally {
    client.disconnect();
  }
}
