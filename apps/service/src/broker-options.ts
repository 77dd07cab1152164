/**
 * The Redis broker's options from the service's config: the pods (app.ts) and the operator
 * CLI's publisher (cli/publish.ts) use the same, so a channel's keys live exactly as long
 * whoever writes them.
 */
import type { RedisBrokerOptions } from "@realtime/redis";
import type { Config } from "./config.ts";

export function redisBrokerOptions(config: Config): RedisBrokerOptions {
  return {
    url: config.redis.url ?? undefined,
    clusterNodes: config.redis.mode === "cluster" ? [...config.redis.clusterNodes] : undefined,
    prefix: config.redis.prefix,
    metaTtlSeconds: Math.ceil(config.channels.idleTtlMs / 1000),
    historySize: config.channels.historyMaxLength,
    historyTtlSeconds: config.channels.historyTtlSeconds,
    waitReplicas: config.redis.waitReplicas,
    waitTimeoutMs: config.redis.waitTimeoutMs,
  };
}
