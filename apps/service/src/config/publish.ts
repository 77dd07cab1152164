/** `config.publish`: how publishes with an `Idempotency-Key` are remembered. */
import type { EnvReader } from "./env.ts";

export interface PublishConfig {
  /**
   * How long a publish with an `Idempotency-Key` is remembered, in ms (`IDEMPOTENCY_WINDOW_MS`):
   * a repeat of the key within it (same publisher, same channel) publishes nothing and gets the
   * first answer. Counted from the first publish. 1000–86400000; default 600000 (10 minutes).
   */
  readonly idempotencyWindowMs: number;
}

export function readPublish(r: EnvReader): PublishConfig {
  return { idempotencyWindowMs: r.int("IDEMPOTENCY_WINDOW_MS", 600_000, 1000, 86_400_000) };
}
