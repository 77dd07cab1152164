/**
 * The per-user stream cap counted over every pod: each pod keeps its own count of each user's
 * streams, and writes it into one Redis hash per user, `<prefix>:conns:<userId>`, field = pod
 * id, value = `<count>:<expires at, ms>`. A new stream is admitted by a script
 * (`lua/conns-acquire.lua`) that sums the fields that have not expired (deleting those that
 * have) and writes this pod's new count only if the total stays within the cap. Pods rewrite
 * their fields (`lua/conns-write.lua`) every third of the lease TTL, so the fields of a pod
 * that died without a word expire and stop counting after at most one TTL: the count heals by
 * itself. A hash holds one field per pod at most, and the key expires one TTL after its last
 * write.
 *
 * This pod's local count is the truth about its own streams: every write to Redis carries it
 * whole (never "+1"), in order on one connection, so a lost reply or a missed release is
 * repaired by the next write or refresh. When Redis cannot be asked, the stream is admitted
 * (fail open) on the local count; the next refresh publishes the count.
 *
 * Lives here, not in the service, because it is Redis code like the broker's and the presence
 * store's: its scripts sit with theirs in `lua/`, it runs on a client of `createRedisClient`
 * (the service's `limits` one), and its test starts a redis-server of its own.
 */
import { randomBytes } from "node:crypto";
import { addCount, type ConnectionLedger, type Release } from "@realtime/server";
import { readLua } from "./lua.ts";
import type { RedisClient } from "./redis-client.ts";

const ACQUIRE = readLua("conns-acquire.lua");
const WRITE = readLua("conns-write.lua");

/** The scripts, as commands ioredis defines on the client (EVALSHA, then EVAL if unknown). */
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

export interface RedisConnectionLedgerOptions {
  /** The client to count on; its owner closes it. */
  readonly redis: RedisClient;
  /** Streams one user may hold open over every pod; at least 1. */
  readonly max: number;
  /** How long a pod's count outlives its last write, in ms (`CONNECTION_LEASE_TTL_MS`). */
  readonly leaseTtlMs: number;
  /** Key prefix. Default `realtime`. */
  readonly prefix?: string;
  /** This pod's field name. Default: random. */
  readonly podId?: string;
  readonly log?: { warn(message: string): void };
}

export class RedisConnectionLedger implements ConnectionLedger {
  readonly podId: string;
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #prefix: string;
  readonly #redis: RedisClient & ScriptedRedis;
  readonly #users = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #log: { warn(message: string): void };
  #lastWarning = 0;

  constructor(options: RedisConnectionLedgerOptions) {
    this.podId = options.podId ?? randomBytes(6).toString("base64url");
    this.#max = options.max;
    this.#ttlMs = options.leaseTtlMs;
    this.#prefix = options.prefix ?? "realtime";
    this.#log = options.log ?? { warn() {} };
    const redis = options.redis;
    if (!("rtConnAcquire" in redis)) {
      redis.defineCommand("rtConnAcquire", { numberOfKeys: 1, lua: ACQUIRE });
      redis.defineCommand("rtConnWrite", { numberOfKeys: 1, lua: WRITE });
    }
    this.#redis = redis as RedisClient & ScriptedRedis;
    this.#timer = setInterval(() => this.refresh(), Math.max(100, Math.floor(this.#ttlMs / 3)));
    this.#timer.unref();
  }

  async acquire(userId: string): Promise<Release | null> {
    // Counted before the first await, so concurrent opens see each other.
    const count = addCount(this.#users, userId, 1);
    if (!(await this.#acquireShared(userId, count))) {
      const now = addCount(this.#users, userId, -1);
      // Releases may have been written while we asked; make Redis hold the count now.
      this.#write(userId, now);
      return null;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#write(userId, addCount(this.#users, userId, -1));
    };
  }

  count(userId: string): number {
    return this.#users.get(userId) ?? 0;
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
    try {
      const key = this.#key(userId);
      return (
        (await this.#redis.rtConnAcquire(key, this.podId, count, this.#ttlMs, this.#max)) === 1
      );
    } catch (error) {
      this.#warn(error);
      return count <= this.#max;
    }
  }

  #write(userId: string, count: number): void {
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
