/**
 * The per-user cap on open streams: a {@link ConnectionLedger} counts each user's streams and
 * refuses one past the cap. {@link MemoryConnectionLedger} counts this pod's streams only
 * (embedded mode: one pod); `RedisConnectionLedger` (`@realtime/redis`) counts over every pod.
 * Both meet one contract (`runConnectionLedgerContract`, `@realtime/server/testing`).
 */

/** Ends a lease; idempotent. */
export type Release = () => void;

export interface ConnectionLedger {
  /**
   * Takes one of `userId`'s stream slots: the lease, or null when the user holds the cap
   * already (a refusal holds nothing). The slot is reserved before the first await, so
   * concurrent calls see each other and cannot all slip under the cap.
   */
  acquire(userId: string): Promise<Release | null>;
  /** Streams this pod holds for `userId`. */
  count(userId: string): number;
  /** Stops the ledger's timers (leases still release). */
  close(): void;
}

export interface MemoryConnectionLedgerOptions {
  /** Streams one user may hold open; at least 1. */
  readonly max: number;
}

export class MemoryConnectionLedger implements ConnectionLedger {
  readonly #max: number;
  readonly #users = new Map<string, number>();

  constructor(options: MemoryConnectionLedgerOptions) {
    this.#max = options.max;
  }

  async acquire(userId: string): Promise<Release | null> {
    if (this.count(userId) >= this.#max) return null;
    addCount(this.#users, userId, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      addCount(this.#users, userId, -1);
    };
  }

  count(userId: string): number {
    return this.#users.get(userId) ?? 0;
  }

  close(): void {}
}

/** Adds `delta` to `key`'s count, deleting it at 0; returns the new count. */
export function addCount(map: Map<string, number>, key: string, delta: number): number {
  const next = (map.get(key) ?? 0) + delta;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
  return Math.max(0, next);
}
