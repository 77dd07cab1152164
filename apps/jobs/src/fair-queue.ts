/**
 * Jobs waiting for a render thread, taken in turns across users rather than in order of
 * submission. FIFO let two users with a queue of jobs each make everyone else wait behind
 * their second and third jobs; here the next job is the oldest one of the user who
 *
 * 1. has the fewest jobs running, then
 * 2. was served longest ago, then
 * 3. has the oldest waiting job.
 *
 * A user who arrives (or comes back after having nothing in the system) counts as served just
 * before the last job started: ahead of everyone served since they last waited, behind
 * whoever has waited longer. So a round is at most one job per user present, and nobody
 * waits more than one round — also not under a stream of new users. A user alone still gets
 * their jobs in the order submitted. A user is forgotten once they have nothing waiting or
 * running, so the state is bounded by the jobs in the system.
 * No I/O: the embedded job system drives it.
 */

interface UserTurns<T> {
  readonly waiting: { readonly item: T; readonly seq: number }[];
  running: number;
  /** The turn at which this user last got a job started (see the class comment for new users). */
  servedAt: number;
}

export class FairQueue<T> {
  readonly #users = new Map<string, UserTurns<T>>();
  #seq = 0;
  #turn = 0;
  #size = 0;

  /** Jobs waiting (not running). */
  get size(): number {
    return this.#size;
  }

  /** Queues `item` of `user` behind the user's other waiting jobs. */
  push(user: string, item: T): void {
    const turns = this.#turnsOf(user);
    turns.waiting.push({ item, seq: ++this.#seq });
    this.#size++;
  }

  /** The next job to start, now counted as running for its user (call {@link done} after). */
  take(): { readonly user: string; readonly item: T } | undefined {
    let best: [string, UserTurns<T>] | undefined;
    for (const entry of this.#users) {
      const [, turns] = entry;
      if (turns.waiting.length === 0) continue;
      if (best === undefined || before(turns, best[1])) best = entry;
    }
    if (best === undefined) return undefined;
    const [user, turns] = best;
    const next = turns.waiting.shift();
    if (next === undefined) return undefined;
    this.#size--;
    turns.running++;
    turns.servedAt = ++this.#turn;
    return { user, item: next.item };
  }

  /** A job of `user` that {@link take} returned is over. */
  done(user: string): void {
    const turns = this.#users.get(user);
    if (!turns) return;
    turns.running = Math.max(0, turns.running - 1);
    this.#forgetIfIdle(user, turns);
  }

  /** Drops the first waiting job of `user` that `match` accepts; whether there was one. */
  remove(user: string, match: (item: T) => boolean): boolean {
    const turns = this.#users.get(user);
    const at = turns?.waiting.findIndex((entry) => match(entry.item)) ?? -1;
    if (!turns || at < 0) return false;
    turns.waiting.splice(at, 1);
    this.#size--;
    this.#forgetIfIdle(user, turns);
    return true;
  }

  /** Drops every waiting job (running ones stay counted until {@link done}). */
  clear(): void {
    for (const [user, turns] of this.#users) {
      this.#size -= turns.waiting.length;
      turns.waiting.length = 0;
      this.#forgetIfIdle(user, turns);
    }
  }

  #turnsOf(user: string): UserTurns<T> {
    let turns = this.#users.get(user);
    if (!turns) {
      turns = { waiting: [], running: 0, servedAt: this.#turn - 0.5 };
      this.#users.set(user, turns);
    }
    return turns;
  }

  #forgetIfIdle(user: string, turns: UserTurns<T>): void {
    if (turns.waiting.length === 0 && turns.running === 0) this.#users.delete(user);
  }
}

/** Whether `a`'s next job goes before `b`'s (both have one waiting). */
function before<T>(a: UserTurns<T>, b: UserTurns<T>): boolean {
  if (a.running !== b.running) return a.running < b.running;
  if (a.servedAt !== b.servedAt) return a.servedAt < b.servedAt;
  return (a.waiting[0]?.seq ?? 0) < (b.waiting[0]?.seq ?? 0);
}
