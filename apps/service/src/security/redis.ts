/**
 * The Redis client the security layer counts in (rate limits, per-user stream counts): one
 * per pod, standalone or Cluster after the broker's configuration, separate from the broker's
 * own connections so a limit check never queues behind a publish.
 */
import { watchConnection } from "@realtime/redis";
import { Cluster, Redis } from "ioredis";
import type { RedisConfig } from "../config.ts";

export type LimitsRedis = Redis | Cluster;

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
  const common = {
    // A limit that cannot be checked is skipped at once rather than queued (fail open: the
    // publish itself still needs the broker, which then refuses with 503).
    enableOfflineQueue: false,
    enableAutoPipelining: true,
  };
  // A counting command cut by a reconnect is not sent again: it may have counted already.
  const noResend = { autoResendUnfulfilledCommands: false };
  const client: LimitsRedis =
    config.mode === "cluster"
      ? new Cluster([...config.clusterNodes], {
          ...common,
          redisOptions: {
            connectionName: "realtime-limits",
            commandTimeout: COMMAND_TIMEOUT_MS,
            maxRetriesPerRequest: 1,
            ...noResend,
            ...credentials(config.url),
          },
        })
      : new Redis(config.url ?? "", {
          ...common,
          connectionName: "realtime-limits",
          commandTimeout: COMMAND_TIMEOUT_MS,
          maxRetriesPerRequest: 1,
          ...noResend,
        });
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

/** Credentials of a cluster URL, which `REDIS_URL` may carry in cluster mode. */
function credentials(url: string | null): { username?: string; password?: string } {
  if (url === null) return {};
  try {
    const parsed = new URL(url);
    return {
      ...(parsed.username && { username: decodeURIComponent(parsed.username) }),
      ...(parsed.password && { password: decodeURIComponent(parsed.password) }),
    };
  } catch {
    return {};
  }
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
