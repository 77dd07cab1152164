/**
 * What the server core counts. The core calls these; the service exposes them (Prometheus).
 * Gauges such as open connections are read from the {@link Hub} when scraped, not pushed.
 * Every method must be cheap and must not throw: they run on the delivery hot path.
 */
export interface Metrics {
  /** `count` event deliveries were written to connections (one per connection per event). */
  eventsSent(count: number): void;
  /** An event was accepted by the broker. */
  eventPublished(): void;
  /** A publish to the broker failed (the caller got an error). */
  publishFailed(): void;
  /**
   * A publish repeated an idempotency key within its window: nothing was published, the
   * caller got the first publish's position.
   */
  publishReplayed?(): void;
  /** A stream was refused before it started; `reason` is a stable error code. */
  connectionRefused(reason: string): void;
  /** A stream ended; `reason` is `client` (the peer left) or a close reason such as `slow`. */
  connectionClosed(reason: string): void;
  /**
   * A stream was sent a `reset` of one of its channels: its client lost continuity there.
   * `reason` is a `ResetReason` of the protocol (`trimmed`, `epoch_changed`, `unknown_cursor`,
   * `gap`); one call per channel reset.
   */
  streamReset?(reason: string): void;
  /** The broker was found below what this pod delivered and the channel got a new epoch. */
  brokerWentBack?(): void;
  /**
   * An event was written to this pod's streams `seconds` after the broker accepted it (the
   * publishing pod's clock at publish, so across pods the figure includes their clock skew).
   * Called once per event per pod, not per stream.
   */
  deliveryLatency?(seconds: number): void;
  /**
   * A stream's first bytes (its headers and start positions) were written `seconds` after its
   * request arrived (authentication, access checks, broker subscriptions and the resume plan
   * included; the replay that follows is not). Called once per stream, only for opens whose
   * caller said when the request arrived (`OpenStreamRequest.receivedAt`).
   */
  streamOpened?(seconds: number): void;
}

/** Metrics that count nothing: the default, and what tests use when they don't care. */
export const noopMetrics: Metrics = {
  eventsSent() {},
  eventPublished() {},
  publishFailed() {},
  connectionRefused() {},
  connectionClosed() {},
};
