/**
 * Full-jitter exponential backoff: each delay is uniform in [0, min(cap, base × 2^attempt)), so
 * thousands of clients cut by one restart come back spread over the window instead of at once.
 */

/** Tunes the reconnect delays. */
export interface BackoffOptions {
  /** Ceiling of the first delay, in ms. Default 1000. */
  readonly baseMs?: number;
  /** Largest ceiling, in ms: the window stops doubling here. Default 30000. */
  readonly maxMs?: number;
}

/** The spec's backoff: 1 s doubling to a 30 s cap. */
export const DEFAULT_BACKOFF: Required<BackoffOptions> = { baseMs: 1000, maxMs: 30_000 };

/**
 * The delay before reconnect number `attempt` (0 for the first retry after a loss), in whole ms.
 *
 * @param random - uniform in [0, 1), injected so tests choose the jitter. Values outside are
 *   clamped and NaN counts as the top of the window, so a faulty source can neither produce a
 *   negative or above-cap delay nor a tight reconnect loop.
 */
export function backoffDelay(
  attempt: number,
  random: () => number,
  options: BackoffOptions = DEFAULT_BACKOFF,
): number {
  const baseMs = options.baseMs ?? DEFAULT_BACKOFF.baseMs;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  // 2 ** 1100 is Infinity, which min() turns back into the cap: no overflow guard needed.
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  const drawn = random();
  const r = Number.isNaN(drawn) ? 1 : Math.min(Math.max(drawn, 0), 1);
  return Math.min(Math.floor(r * ceiling), Math.max(0, ceiling - 1));
}
