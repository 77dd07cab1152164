/** Timers that run only when the test says so, and record every delay asked for. */
import type { Timers } from "../timers.ts";

interface Pending {
  readonly id: number;
  readonly ms: number;
  readonly callback: () => void;
}

export class ManualTimers implements Timers {
  /** Every delay passed to `setTimeout`, in order (cleared ones included). */
  readonly requested: number[] = [];
  #pending: Pending[] = [];
  #ids = 0;

  setTimeout(callback: () => void, ms: number): unknown {
    const id = ++this.#ids;
    this.requested.push(ms);
    this.#pending.push({ id, ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#pending = this.#pending.filter((timer) => timer.id !== handle);
  }

  /** Delays of the timers still pending. */
  get pending(): number[] {
    return this.#pending.map((timer) => timer.ms);
  }

  /** Runs the oldest pending timer; throws when there is none (the test expected one). */
  fireNext(): void {
    const timer = this.#pending.shift();
    if (!timer) throw new Error("no timer is pending");
    timer.callback();
  }
}
