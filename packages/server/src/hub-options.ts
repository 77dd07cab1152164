/** What a `Hub` is configured with, and what opening a stream on it takes. */
import type { ChannelName } from "@realtime/protocol";
import type { Broker } from "./broker.ts";
import type { Connection } from "./connection.ts";
import type { Delivery } from "./fan-out.ts";
import type { HistoryStore } from "./history-store.ts";
import type { Metrics } from "./metrics.ts";
import type { SseStream } from "./sse-stream.ts";

export interface HubOptions {
  broker: Broker;
  /**
   * Where missed events are read back from (usually the broker itself). Without it, a client
   * that missed events gets a `reset`, and a pod that missed live messages cannot backfill.
   */
  history?: HistoryStore;
  /** Most events replayed to one channel of a resuming stream; further behind → reset. Default 10000. */
  maxReplay?: number;
  /** Events a replay reads from history per round trip (and holds in memory at once). Default 64. */
  replayPageSize?: number;
  /**
   * Replays running at once on this hub; more wait their turn (connected, live messages
   * buffered). Bounds the memory replays take. Default 32.
   */
  maxConcurrentReplays?: number;
  /** Replays of one user running at once; the user's others wait. Default 2. */
  maxReplaysPerUser?: number;
  /**
   * How often the pod compares each channel's last delivered position with the broker's, in
   * ms, to catch a lost last message. Default 15000; 0 disables.
   */
  positionCheckIntervalMs?: number;
  /**
   * How long a backfill asks history again while a Redis that cannot speak for the live message
   * that asked answers (a master that woke after its failover); then the channel is reset
   * rather than repaired from that answer. Default 10000.
   */
  strangerHistoryMs?: number;
  /** Default: counts nothing. */
  metrics?: Metrics;
  /**
   * Called once per live event this pod wrote to its streams (not per stream), with the
   * publish request's id and the publish→delivery latency: for following one event across
   * pods' logs. Runs on the delivery path — keep it cheap; leave it unset unless someone reads
   * what it records (the service sets it only when its log level is `debug` or lower).
   */
  onDelivered?: (delivery: Delivery) => void;
  /** Streams this hub holds at most; more are refused with `at_capacity`. Default 10000. */
  maxConnections?: number;
  /** A heartbeat comment is written after this long without a write, in ms. Default 15000. */
  heartbeatIntervalMs?: number;
  /** Base of the `retry:` reconnect hint, in ms. Default 2000. */
  retryMs?: number;
  /** Random extra added to each `retry:` hint, in ms, so reconnects spread. Default 3000. */
  retryJitterMs?: number;
  /** A stream whose unsent bytes exceed this is dropped as slow. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** A stream whose writes stay backed up this long is dropped as slow, in ms. Default 10000. */
  maxStallMs?: number;
  /** How often streams are checked for heartbeat, stall and expiry, in ms. Default 1000. */
  sweepIntervalMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
  /** Randomness for jitter, for tests. Default `Math.random`. */
  random?: () => number;
}

/** Hooks into the life of every stream (see `Hub.onStream`). */
export interface StreamLifecycle {
  opened(stream: SseStream): void;
  closed(stream: SseStream): void;
}

export interface OpenStreamRequest {
  userId: string;
  /** Display name from the token; carried for presence. Default: the user id. */
  userName?: string;
  /** The channels, already validated and authorized by the caller. Duplicates are ignored. */
  channels: readonly ChannelName[];
  /** `Last-Event-ID` or `lastEventId` from the client, if any. */
  cursor?: string | null;
  /**
   * When the stream must end (ms since epoch): it is closed with `token_expired` then, on a
   * timer of its own. Default: never.
   */
  expiresAt?: number;
  /** Aborted when the client goes away while the stream is being prepared. */
  signal?: AbortSignal;
  /** Sends the response headers and returns the connection; called once the stream is ready. */
  connect: () => Connection;
  /**
   * When the request arrived, as `performance.now()` (monotonic ms): the hub reports the time
   * from then to the stream's first write (`Metrics.streamOpened`). Absent: not reported.
   */
  receivedAt?: number;
}
