/**
 * Decides when measured progress is worth reporting: at most once per `intervalMs`, only when
 * the whole percentage rose, and always for the last frame. Fast renders therefore report a
 * handful of updates, not one per frame; slow ones report each visible step.
 */
export class ProgressThrottle {
  readonly #intervalMs: number;
  readonly #now: () => number;
  #lastAt = Number.NEGATIVE_INFINITY;
  #lastPercent = -1;

  constructor(intervalMs: number, now: () => number = () => performance.now()) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Whether `done` of `total` should be reported now; remembers it if so. */
  shouldReport(done: number, total: number): boolean {
    const percent = percentOf(done, total);
    if (percent <= this.#lastPercent) return false;
    const now = this.#now();
    if (done < total && now - this.#lastAt < this.#intervalMs) return false;
    this.#lastAt = now;
    this.#lastPercent = percent;
    return true;
  }
}

/** Whole percent of `done` of `total`, 100 only when everything is done. */
export function percentOf(done: number, total: number): number {
  if (total <= 0 || done >= total) return 100;
  return Math.min(99, Math.floor((done * 100) / total));
}
