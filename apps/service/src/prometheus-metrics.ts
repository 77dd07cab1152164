/**
 * The Prometheus implementation of the core's {@link Metrics} interface.
 *
 * Each instance owns its own registry, never prom-client's global one, so that tests (and a
 * process running several apps) can build as many as they like without "already registered"
 * errors or counts leaking between them.
 */
import type { Metrics, PresenceMetrics, PresenceStatus } from "@realtime/server";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { AccessMetrics, AuthzResult } from "./auth/authz.ts";

export interface PrometheusMetricsOptions {
  /** Read at scrape time, so the numbers are never stale and cost nothing between scrapes. */
  readonly gauges: {
    /** Open SSE streams on this pod. */
    connections(): number;
    /** Channels with at least one local subscriber on this pod. */
    channels(): number;
    /** Distinct users with a presence-tracked stream on this pod. Default: not exported. */
    presenceUsers?(): number;
    /** Bytes accepted for this pod's streams, not yet written (the fan-out queue). Default: not exported. */
    queuedBytes?(): number;
    /** Streams whose writes report backpressure now. Default: not exported. */
    stalledStreams?(): number;
    /** Resuming streams replaying history now. Default: not exported. */
    replaysRunning?(): number;
    /** Resuming streams waiting for a replay slot. Default: not exported. */
    replaysWaiting?(): number;
    /** Embedded mode: channels the in-memory broker holds. Default: not exported. */
    brokerChannels?(): number;
    /** Embedded mode: bytes of history the in-memory broker holds. Default: not exported. */
    historyBytes?(): number;
  };
  /** Whether to add prom-client's process metrics (CPU, memory, event loop), prefixed `realtime_`. Default true. */
  readonly defaultMetrics?: boolean;
}

/**
 * Most distinct `reason` label values per counter. Reasons are meant to be a small fixed set
 * (error codes, close reasons); the cap keeps a bug that passes something unbounded from
 * growing the series count without limit.
 */
export const MAX_REASONS = 32;

/** Label value used once {@link MAX_REASONS} distinct reasons have been seen. */
export const OTHER_REASON = "other";

/** Delivery latency buckets, seconds: loopback deliveries take about a millisecond, a stall seconds. */
const DELIVERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Reasons become label values: keep them short and plain. */
const REASON_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export class PrometheusMetrics implements Metrics, PresenceMetrics, AccessMetrics {
  readonly #registry = new Registry();
  readonly #eventsSent: Counter;
  readonly #published: Counter;
  readonly #publishErrors: Counter;
  readonly #refused: Counter<"reason">;
  readonly #disconnects: Counter<"reason">;
  readonly #presenceEvents: Counter<"status">;
  readonly #wentBack: Counter;
  readonly #replays: Counter;
  readonly #authz: Counter<"result">;
  readonly #revoked: Counter;
  readonly #jwksFetchFailures: Counter;
  readonly #deliveryLatency: Histogram;
  readonly #refusedReasons = new Set<string>();
  readonly #disconnectReasons = new Set<string>();

  constructor(options: PrometheusMetricsOptions) {
    const registers = [this.#registry];
    const { gauges } = options;

    // Names of the first four are the spec's (seed/realtime-specialist.md, Monitoring).
    new Gauge({
      name: "sse_connections_total",
      help: "Open SSE streams on this pod.",
      registers,
      collect() {
        this.set(gauges.connections());
      },
    });
    new Gauge({
      name: "sse_channels_total",
      help: "Channels with at least one local subscriber on this pod.",
      registers,
      collect() {
        this.set(gauges.channels());
      },
    });
    this.#eventsSent = new Counter({
      name: "sse_events_sent",
      help: "Event deliveries written to SSE streams (one per stream per event).",
      registers,
    });
    this.#publishErrors = new Counter({
      name: "redis_publish_errors",
      help: "Publishes that failed at the broker (any broker, embedded or Redis).",
      registers,
    });
    this.#published = new Counter({
      name: "realtime_events_published_total",
      help: "Events accepted by the broker.",
      registers,
    });
    this.#replays = new Counter({
      name: "realtime_publish_replays_total",
      help: "Publishes that repeated an idempotency key within its window: answered with the first publish's position, nothing published.",
      registers,
    });
    this.#refused = new Counter({
      name: "sse_connections_refused_total",
      help: "SSE streams refused before they started, by error code.",
      labelNames: ["reason"] as const,
      registers,
    });
    this.#disconnects = new Counter({
      name: "sse_disconnects_total",
      help: "SSE streams that ended, by reason (client, slow, shutdown, ...).",
      labelNames: ["reason"] as const,
      registers,
    });

    // Optional gauges, each read at scrape time; absent reads are not exported.
    const optional: [string, string, (() => number) | undefined][] = [
      [
        "sse_queued_bytes",
        "Bytes accepted for this pod's SSE streams and not yet written to the network (the fan-out queue; each stream's share is bounded by SLOW_CLIENT_MAX_BYTES).",
        gauges.queuedBytes,
      ],
      [
        "sse_stalled_streams",
        "SSE streams whose writes report backpressure now (clients not reading fast enough).",
        gauges.stalledStreams,
      ],
      [
        "realtime_presence_users_online",
        "Distinct users with at least one presence-tracked SSE stream on this pod.",
        gauges.presenceUsers,
      ],
      [
        "sse_replays_running",
        "Resuming SSE streams replaying missed events from history now (at most MAX_REPLAYS).",
        gauges.replaysRunning,
      ],
      [
        "sse_replays_waiting",
        "Resuming SSE streams waiting for a replay slot (connected, live events buffered).",
        gauges.replaysWaiting,
      ],
      [
        "realtime_broker_channels",
        "Embedded mode: channels the in-memory broker holds (at most MAX_CHANNELS).",
        gauges.brokerChannels,
      ],
      [
        "realtime_history_bytes",
        "Embedded mode: bytes of history the in-memory broker holds (at most HISTORY_MAX_BYTES).",
        gauges.historyBytes,
      ],
    ];
    for (const [name, help, read] of optional) {
      if (!read) continue;
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    }

    this.#wentBack = new Counter({
      name: "realtime_broker_went_back_total",
      help: "Times a channel was found below what this pod delivered in the same epoch (the broker lost a tail) and was given a new epoch.",
      registers,
    });
    this.#presenceEvents = new Counter({
      name: "realtime_presence_events_total",
      help: "Presence events (online/offline) this pod published.",
      labelNames: ["status"] as const,
      registers,
    });

    this.#authz = new Counter({
      name: "realtime_authz_requests_total",
      help: "Decisions asked of AUTHZ_URL, by result: allow, deny, no_rule (404: the default applies), timeout, error (any other answer, or none).",
      labelNames: ["result"] as const,
      registers,
    });
    this.#revoked = new Counter({
      name: "realtime_grants_revoked_total",
      help: "Open SSE streams closed (3503 forbidden) because a channel they carry is no longer granted.",
      registers,
    });
    this.#jwksFetchFailures = new Counter({
      name: "realtime_jwks_fetch_failures_total",
      help: "Fetches of the identity provider's key set (JWT_JWKS_URL) that failed: unreachable, timed out, not 200, or not a key set. Tokens are then checked with the keys fetched before.",
      registers,
    });

    this.#deliveryLatency = new Histogram({
      name: "realtime_delivery_latency_seconds",
      help: "From the broker accepting an event to this pod writing it to its streams, in seconds (one observation per event per pod; across pods it includes their clock skew).",
      buckets: DELIVERY_BUCKETS,
      registers,
    });

    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.#registry, prefix: "realtime_" });
    }
  }

  /** The registry, for adding service-specific series next to these. */
  get registry(): Registry {
    return this.#registry;
  }

  /** The `Content-Type` of {@link render}'s output. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The exposition text for `GET /metrics`. */
  render(): Promise<string> {
    return this.#registry.metrics();
  }

  eventsSent(count: number): void {
    // A counter must not go down, and prom-client throws on negative increments; the
    // interface forbids throwing on the hot path, so ignore nonsense instead.
    if (count > 0 && Number.isFinite(count)) this.#eventsSent.inc(count);
  }

  eventPublished(): void {
    this.#published.inc();
  }

  publishFailed(): void {
    this.#publishErrors.inc();
  }

  publishReplayed(): void {
    this.#replays.inc();
  }

  connectionRefused(reason: string): void {
    this.#refused.inc({ reason: boundedReason(reason, this.#refusedReasons) });
  }

  connectionClosed(reason: string): void {
    this.#disconnects.inc({ reason: boundedReason(reason, this.#disconnectReasons) });
  }

  brokerWentBack(): void {
    this.#wentBack.inc();
  }

  presenceEvent(status: PresenceStatus): void {
    this.#presenceEvents.inc({ status });
  }

  authzRequest(result: AuthzResult): void {
    this.#authz.inc({ result });
  }

  grantRevoked(): void {
    this.#revoked.inc();
  }

  deliveryLatency(seconds: number): void {
    // Clocks of two pods may disagree by a little: a negative figure is skew, not time travel.
    if (Number.isFinite(seconds)) this.#deliveryLatency.observe(Math.max(0, seconds));
  }

  /** A fetch of the JWKS (`JWT_JWKS_URL`) failed. */
  jwksFetchFailed(): void {
    this.#jwksFetchFailures.inc();
  }
}

function boundedReason(reason: string, seen: Set<string>): string {
  if (seen.has(reason)) return reason;
  if (seen.size >= MAX_REASONS || !REASON_PATTERN.test(reason)) return OTHER_REASON;
  seen.add(reason);
  return reason;
}
