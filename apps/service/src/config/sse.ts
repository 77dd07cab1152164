/** `config.sse`: heartbeats and reconnect hints of the streams. */
import type { EnvReader } from "./env.ts";

export interface SseConfig {
  /** Interval between heartbeat comments on idle streams, in ms (`HEARTBEAT_INTERVAL_MS`). Default 15000. */
  readonly heartbeatIntervalMs: number;
  /** Base of the `retry:` reconnect hint, in ms (`RETRY_MS`). Default 2000. */
  readonly retryMs: number;
  /**
   * Random extra added to {@link retryMs} per stream, in ms (`RETRY_JITTER_MS`), so a pod
   * restart does not bring every client back in the same instant. Default 3000; 0 disables.
   */
  readonly retryJitterMs: number;
}

export function readSse(r: EnvReader): SseConfig {
  return {
    heartbeatIntervalMs: r.int("HEARTBEAT_INTERVAL_MS", 15000),
    retryMs: r.int("RETRY_MS", 2000),
    retryJitterMs: r.int("RETRY_JITTER_MS", 3000, 0),
  };
}
