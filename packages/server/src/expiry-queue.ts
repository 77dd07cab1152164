/**
 * Streams' token expiries on one timer: a binary min-heap of deadlines, the timer armed for
 * the earliest. A `setTimeout` per stream cost ~570 bytes of heap each (its Timeout, and a
 * timer list of its own, since two tokens rarely leave the same number of milliseconds); an
 * entry here costs its slot and a small object, and adding or removing one is O(log n).
 *
 * A deadline is met when the timer armed for it fires, as a timer of its own would have been:
 * everything due by then (by the clock, or by the deadline the timer was armed for, whichever
 * is later) expires, in deadline order.
 */

/** The longest delay `setTimeout` takes (a longer one fires at once): ~24.8 days. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry<T> {
  readonly item: T;
  readonly at: number;
  /** Where the entry is in the heap; -1 once out of it. */
  index: number;
}

export class ExpiryQueue<T> {
  readonly #now: () => number;
  readonly #expired: (item: T) => void;
  readonly #heap: Entry<T>[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (ms, on `now`'s clock); Infinity when none is armed. */
  #armedFor = Number.POSITIVE_INFINITY;
  #closed = false;

  /** `expired` is called once for each item whose deadline came, unless removed before. */
  constructor(now: () => number, expired: (item: T) => void) {
    this.#now = now;
    this.#expired = expired;
  }

  /** Items waiting for their deadline. */
  get size(): number {
    return this.#heap.length;
  }

  /**
   * Expires `item` at `at` (ms on `now`'s clock; a past one at the next turn of the event
   * loop). Returns what takes it out again, which is safe to call at any time, twice included.
   */
  add(item: T, at: number): () => void {
    if (this.#closed) return () => {};
    const entry: Entry<T> = { item, at, index: this.#heap.length };
    this.#heap.push(entry);
    this.#up(entry.index);
    if (at < this.#armedFor) this.#arm();
    return () => this.#remove(entry);
  }

  /** Stops the timer and lets every item go; nothing expires any more, nothing is added. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Number.NEGATIVE_INFINITY; // never armed again
    for (const entry of this.#heap) entry.index = -1;
    this.#heap.length = 0;
  }

  #remove(entry: Entry<T>): void {
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    const last = this.#heap.pop() as Entry<T>;
    if (last === entry) return;
    this.#heap[i] = last;
    last.index = i;
    this.#down(i);
    this.#up(last.index);
    // The timer stays as it is: armed for an earlier deadline it fires, finds nothing due and
    // arms for the next one.
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const first = this.#heap[0];
    if (!first) {
      this.#timer = undefined;
      this.#armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    const now = this.#now();
    const delay = Math.min(Math.max(0, first.at - now), MAX_TIMER_MS);
    this.#armedFor = now + delay;
    this.#timer = setTimeout(() => this.#fire(), delay);
    this.#timer.unref();
  }

  #fire(): void {
    const due = Math.max(this.#now(), this.#armedFor);
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    for (let first = this.#heap[0]; first && first.at <= due; first = this.#heap[0]) {
      this.#remove(first);
      this.#expired(first.item);
    }
    if (this.#armedFor === Number.POSITIVE_INFINITY) this.#arm();
  }

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i] as Entry<T>;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = heap[parentIndex] as Entry<T>;
      if (parent.at <= entry.at) break;
      heap[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    heap[i] = entry;
    entry.index = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const entry = heap[i] as Entry<T>;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && (heap[right] as Entry<T>).at < (heap[left] as Entry<T>).at
          ? right
          : left;
      const smaller = heap[child] as Entry<T>;
      if (smaller.at >= entry.at) break;
      heap[i] = smaller;
      smaller.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
