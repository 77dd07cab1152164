/**
 * How many replays a pod runs at once, in all and per user. A replay holds one history page in
 * memory while the peer drains it; bounding how many run bounds that memory whatever the
 * clients do, and the per-user share keeps one user's reconnect storm from taking every slot.
 *
 * Waiters are served in arrival order, skipping (not dropping) those whose user is at its
 * share: a user's second replay never goes before another user's first that came earlier.
 * Pure bookkeeping: no timers, no I/O.
 */

/** One request for a slot. */
export interface ReplayTicket {
  /** Resolves true once the slot is held, or false when the ticket was released first. */
  readonly granted: Promise<boolean>;
  /** Frees the slot, or withdraws the request while it waits. Idempotent. */
  release(): void;
}

interface Waiter {
  readonly userId: string;
  readonly grant: (granted: boolean) => void;
  state: "waiting" | "running" | "done";
}

export class ReplaySlots {
  readonly #max: number;
  readonly #maxPerUser: number;
  readonly #perUser = new Map<string, number>();
  #queue: Waiter[] = [];
  #running = 0;

  /**
   * @param max replays at once on this pod (≥ 1).
   * @param maxPerUser replays at once of one user (≥ 1).
   */
  constructor(max: number, maxPerUser: number) {
    this.#max = Math.max(1, max);
    this.#maxPerUser = Math.max(1, maxPerUser);
  }

  /** Replays holding a slot now. */
  get running(): number {
    return this.#running;
  }

  /** Replays waiting for a slot now. */
  get waiting(): number {
    return this.#queue.length;
  }

  acquire(userId: string): ReplayTicket {
    let grant!: (granted: boolean) => void;
    const granted = new Promise<boolean>((resolve) => {
      grant = resolve;
    });
    const waiter: Waiter = { userId, grant, state: "waiting" };
    this.#queue.push(waiter);
    this.#dispatch();
    return { granted, release: () => this.#release(waiter) };
  }

  #release(waiter: Waiter): void {
    if (waiter.state === "done") return;
    if (waiter.state === "waiting") {
      this.#queue = this.#queue.filter((w) => w !== waiter);
      waiter.state = "done";
      waiter.grant(false);
      return;
    }
    waiter.state = "done";
    this.#running--;
    const held = (this.#perUser.get(waiter.userId) ?? 1) - 1;
    if (held > 0) this.#perUser.set(waiter.userId, held);
    else this.#perUser.delete(waiter.userId);
    this.#dispatch();
  }

  #dispatch(): void {
    if (this.#running >= this.#max || this.#queue.length === 0) return;
    const queue = this.#queue;
    const skipped: Waiter[] = [];
    let i = 0;
    for (; i < queue.length && this.#running < this.#max; i++) {
      const waiter = queue[i] as Waiter;
      const held = this.#perUser.get(waiter.userId) ?? 0;
      if (held >= this.#maxPerUser) {
        skipped.push(waiter);
        continue;
      }
      this.#running++;
      this.#perUser.set(waiter.userId, held + 1);
      waiter.state = "running";
      waiter.grant(true);
    }
    this.#queue = skipped.concat(queue.slice(i));
  }
}
