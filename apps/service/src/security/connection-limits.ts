/**
 * Caps on open SSE streams per user and per client IP (the per-pod cap is the hub's
 * `MAX_CONNECTIONS`).
 *
 * Per IP is counted on this pod. Per user is counted over every pod in Redis mode: each pod
 * keeps its own count of each user's streams, and writes it into one Redis hash per user,
 * `<prefix>:conns:<userId>`, field = pod id, value = `<count>:<expires at, ms>`. A new stream
 * is admitted by a script that sums the fields that have not expired (deleting those that
 * have) and writes this pod's new count only if the total stays within the cap. Pods rewrite
 * their fields every third of the lease TTL, so the fields of a pod that died without a word
 * expire and stop counting after at most one TTL: the count heals by itself. A hash holds one
 * field per pod at most, and the key expires one TTL after its last write.
 *
 * This pod's local count is the truth about its own streams: every write to Redis carries it
 * whole (never "+1"), in order on one connection, so a lost reply or a missed release is
 * repaired by the next write or refresh. When Redis cannot be asked, the stream is admitted
 * (fail open) and counted locally; the next refresh publishes the count.
 */
import { randomBytes } from "node:crypto";
import type { ConnectionLimitsConfig } from "../config/security.ts";
import type { LimitsRedis } from "./redis.ts";

/** Why a stream was refused; `sse_connections_refused_total{reason}` label. */
export type ConnectionRefusal = "per_user_limit" | "per_ip_limit";

/** Ends a lease; idempotent. */
export type Release = () => void;

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #fields, 2 do
  local pod = fields[i]
  if pod ~= ARGV[1] then
    local value = fields[i + 1]
    local sep = string.find(value, ':', 1, true)
    local count = tonumber(string.sub(value, 1, sep - 1)) or 0
    local expires = tonumber(string.sub(value, sep + 1)) or 0
    if expires <= now then
      redis.call('HDEL', KEYS[1], pod)
    else
      others = others + count
    end
  end
end
local mine = tonumber(ARGV[2])
if others + mine > tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], mine .. ':' .. (now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

const WRITE = `
local count = tonumber(ARGV[2])
if count <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], count .. ':' .. (now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

interface ScriptedRedis {
  rtConnAcquire(
    key: string,
    pod: string,
    count: number,
    ttlMs: number,
    max: number,
  ): Promise<number>;
  rtConnWrite(key: string, pod: string, count: number, ttlMs: number): Promise<number>;
}

export interface ConnectionLimitsOptions extends ConnectionLimitsConfig {
  /** Redis mode: where per-user counts are shared. Null: this pod only. */
  readonly redis?: LimitsRedis | null;
  readonly prefix?: string;
  /** This pod's field name. Default: random. */
  readonly podId?: string;
  readonly log?: { warn(message: string): void };
}

export class ConnectionLimits {
  readonly podId: string;
  readonly #perUser: number;
  readonly #perIp: number;
  readonly #ttlMs: number;
  readonly #users = new Map<string, number>();
  readonly #ips = new Map<string, number>();
  readonly #redis: (LimitsRedis & ScriptedRedis) | null;
  readonly #prefix: string;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #log: { warn(message: string): void };
  #lastWarning = 0;

  constructor(options: ConnectionLimitsOptions) {
    this.podId = options.podId ?? randomBytes(6).toString("base64url");
    this.#perUser = options.perUser;
    this.#perIp = options.perIp;
    this.#ttlMs = options.leaseTtlMs;
    this.#prefix = options.prefix ?? "realtime";
    this.#log = options.log ?? { warn() {} };
    const redis = options.perUser > 0 ? (options.redis ?? null) : null;
    if (redis) {
      if (!("rtConnAcquire" in redis)) {
        redis.defineCommand("rtConnAcquire", { numberOfKeys: 1, lua: ACQUIRE });
        redis.defineCommand("rtConnWrite", { numberOfKeys: 1, lua: WRITE });
      }
      this.#timer = setInterval(() => this.refresh(), Math.max(100, Math.floor(this.#ttlMs / 3)));
      this.#timer.unref();
    }
    this.#redis = redis as (LimitsRedis & ScriptedRedis) | null;
  }

  /** Streams this pod holds for `userId`. */
  userCount(userId: string): number {
    return this.#users.get(userId) ?? 0;
  }

  /** Streams this pod holds from `ip`. */
  ipCount(ip: string): number {
    return this.#ips.get(ip) ?? 0;
  }

  /** Admits one more stream of `userId` from `ip`, or says which cap refuses it. */
  async acquire(userId: string, ip: string): Promise<Release | ConnectionRefusal> {
    if (this.#perIp > 0 && this.ipCount(ip) >= this.#perIp) return "per_ip_limit";
    // Reserve both at once (no await in between), so concurrent opens see each other.
    bump(this.#ips, ip, 1);
    let released = false;
    const releaseIp = () => bump(this.#ips, ip, -1);
    if (this.#perUser === 0) {
      return () => {
        if (released) return;
        released = true;
        releaseIp();
      };
    }
    const count = bump(this.#users, userId, 1);
    let admitted: boolean;
    if (this.#redis === null) {
      admitted = count <= this.#perUser;
    } else {
      admitted = await this.#acquireShared(userId, count);
    }
    if (!admitted) {
      releaseIp();
      const now = bump(this.#users, userId, -1);
      // Releases may have been written while we asked; make Redis hold the count now.
      this.#write(userId, now);
      return "per_user_limit";
    }
    return () => {
      if (released) return;
      released = true;
      releaseIp();
      const now = bump(this.#users, userId, -1);
      this.#write(userId, now);
    };
  }

  /** Rewrites this pod's count of every user it holds streams of (keeps them from expiring). */
  refresh(): void {
    for (const [userId, count] of this.#users) this.#write(userId, count);
  }

  /** Stops refreshing. This pod's fields expire one TTL later unless released before. */
  close(): void {
    clearInterval(this.#timer);
  }

  async #acquireShared(userId: string, count: number): Promise<boolean> {
    const redis = this.#redis as LimitsRedis & ScriptedRedis;
    try {
      const result = await redis.rtConnAcquire(
        this.#key(userId),
        this.podId,
        count,
        this.#ttlMs,
        this.#perUser,
      );
      return result === 1;
    } catch (error) {
      this.#warn(error);
      return count <= this.#perUser;
    }
  }

  #write(userId: string, count: number): void {
    if (this.#redis === null) return;
    this.#redis
      .rtConnWrite(this.#key(userId), this.podId, count, this.#ttlMs)
      .catch((error: unknown) => this.#warn(error));
  }

  #key(userId: string): string {
    return `${this.#prefix}:conns:${userId}`;
  }

  #warn(error: unknown): void {
    const now = Date.now();
    if (now - this.#lastWarning < 10_000) return;
    this.#lastWarning = now;
    const message = error instanceof Error ? error.message : String(error);
    this.#log.warn(`per-user stream count unavailable, admitting on local counts: ${message}`);
  }
}

/** Adds `delta` to `key`'s count, deleting it at 0; returns the new count. */
function bump(map: Map<string, number>, key: string, delta: number): number {
  const next = (map.get(key) ?? 0) + delta;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
  return Math.max(0, next);
}
