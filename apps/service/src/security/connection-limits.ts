/**
 * Caps on open SSE streams per user and per client IP (the per-pod cap is the hub's
 * `MAX_CONNECTIONS`).
 *
 * Per IP is counted on this pod, here. Per user is a {@link ConnectionLedger}'s:
 * `MemoryConnectionLedger` (`@realtime/server`) in embedded mode, `RedisConnectionLedger`
 * (`@realtime/redis`) in Redis mode, where one user's streams are counted over every pod and
 * the count of a pod that died heals by itself within the lease TTL (see that file).
 */

import { RedisConnectionLedger } from "@realtime/redis";
import {
  addCount,
  type ConnectionLedger,
  MemoryConnectionLedger,
  type Release,
} from "@realtime/server";
import type { ConnectionLimitsConfig } from "../config/security.ts";
import type { LimitsRedis } from "./redis.ts";

export type { Release } from "@realtime/server";

/** Why a stream was refused; `sse_connections_refused_total{reason}` label. */
export type ConnectionRefusal = "per_user_limit" | "per_ip_limit";

export interface ConnectionLimitsOptions {
  /** Streams per client IP on this pod; 0 = no limit. */
  readonly perIp: number;
  /** Where per-user streams are counted; null: no per-user limit. */
  readonly ledger: ConnectionLedger | null;
}

/**
 * The ledger for `config`: none when the per-user cap is off, counted in `redis` (this pod's
 * field named `podId`, default random) when there is one, else in memory.
 */
export function connectionLedger(
  config: ConnectionLimitsConfig,
  redis: LimitsRedis | null,
  options: { prefix: string; podId?: string; log?: { warn(message: string): void } },
): ConnectionLedger | null {
  if (config.perUser === 0) return null;
  if (redis === null) return new MemoryConnectionLedger({ max: config.perUser });
  return new RedisConnectionLedger({
    redis,
    max: config.perUser,
    leaseTtlMs: config.leaseTtlMs,
    ...options,
  });
}

export class ConnectionLimits {
  readonly #perIp: number;
  readonly #ledger: ConnectionLedger | null;
  readonly #ips = new Map<string, number>();

  constructor(options: ConnectionLimitsOptions) {
    this.#perIp = options.perIp;
    this.#ledger = options.ledger;
  }

  /** Streams this pod holds for `userId`. */
  userCount(userId: string): number {
    return this.#ledger?.count(userId) ?? 0;
  }

  /** Streams this pod holds from `ip`. */
  ipCount(ip: string): number {
    return this.#ips.get(ip) ?? 0;
  }

  /** Admits one more stream of `userId` from `ip`, or says which cap refuses it. */
  async acquire(userId: string, ip: string): Promise<Release | ConnectionRefusal> {
    if (this.#perIp > 0 && this.ipCount(ip) >= this.#perIp) return "per_ip_limit";
    // Reserve both at once (the ledger reserves before it awaits), so concurrent opens see
    // each other.
    addCount(this.#ips, ip, 1);
    const releaseIp = () => addCount(this.#ips, ip, -1);
    const userLease = this.#ledger === null ? () => {} : await this.#ledger.acquire(userId);
    if (userLease === null) {
      releaseIp();
      return "per_user_limit";
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      releaseIp();
      userLease();
    };
  }

  /** Stops the ledger's timers. */
  close(): void {
    this.#ledger?.close();
  }
}
