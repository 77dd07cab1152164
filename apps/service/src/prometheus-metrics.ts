/**
 * The Prometheus implementation of the core's {@link Metrics} interface.
 *
 * Each instance owns its own registry, never prom-client's global one, so that tests (and a
 * process running several apps) can build as many as they like without "already registered"
 * errors or counts leaking between them.
 *
 * Names: the seed's four (`sse_connections_total`, `sse_channels_total`, `sse_events_sent`,
 * `redis_publish_errors`) stay as the spec gives them; every other series starts `realtime_`,
 * counters end in `_total` and gauges do not. Series named before that rule stay exported,
 * with the same value, as aliases of their conforming names ({@link METRIC_ALIASES}), so
 * existing dashboards and alerts keep working; docs/operations.md lists both.
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
    /** 1 when `GET /readyz` answers 200 (accepting streams, broker live), else 0. Default: not exported. */
    ready?(): number;
    /** 1 while the broker is confirmed live, else 0. Default: not exported. */
    brokerReady?(): number;
    /** 1 from the moment a shutdown starts (new streams refused, open ones drained), else 0. Default: not exported. */
    draining?(): number;
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

/**
 * Stream open and HTTP request buckets, seconds: a local open or answer takes a millisecond or
 * two, one that waits on Redis or `AUTHZ_URL` tens, a stuck dependency its timeout.
 */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The spec's names (seed/realtime-specialist.md, Monitoring): kept exactly, whatever the rule. */
export const SEED_METRICS = [
  "sse_connections_total",
  "sse_channels_total",
  "sse_events_sent",
  "redis_publish_errors",
] as const;

/**
 * Names exported before the naming rule, each with the conforming name it is an alias of (same
 * type, labels and value). The seed's four have conforming twins too, so that a dashboard can
 * use one rule throughout.
 */
export const METRIC_ALIASES: Readonly<Record<string, string>> = {
  sse_connections_total: "realtime_streams",
  sse_channels_total: "realtime_channels",
  sse_events_sent: "realtime_events_sent_total",
  redis_publish_errors: "realtime_publish_errors_total",
  sse_connections_refused_total: "realtime_streams_refused_total",
  sse_disconnects_total: "realtime_streams_closed_total",
  sse_queued_bytes: "realtime_queued_bytes",
  sse_stalled_streams: "realtime_stalled_streams",
  sse_replays_running: "realtime_replays_running",
  sse_replays_waiting: "realtime_replays_waiting",
  http_requests_rate_limited_total: "realtime_http_requests_rate_limited_total",
};

/**
 * `route` of `realtime_http_request_duration_seconds` for a request no route matched: one value
 * for them all, so a scanner's thousand paths add no series.
 */
export const UNMATCHED_ROUTE = "unmatched";

/** Reasons become label values: keep them short and plain. */
const REASON_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export class PrometheusMetrics implements Metrics, PresenceMetrics, AccessMetrics {
  readonly #registry = new Registry();
  readonly #eventsSent: Counter;
  readonly #eventsSentAlias: Counter;
  readonly #published: Counter;
  readonly #publishErrors: Counter;
  readonly #publishErrorsAlias: Counter;
  readonly #refused: Counter<"reason">;
  readonly #refusedAlias: Counter<"reason">;
  readonly #disconnects: Counter<"reason">;
  readonly #disconnectsAlias: Counter<"reason">;
  readonly #resets: Counter<"reason">;
  readonly #presenceEvents: Counter<"status">;
  readonly #wentBack: Counter;
  readonly #replays: Counter;
  readonly #authz: Counter<"result">;
  readonly #revoked: Counter;
  readonly #jwksFetchFailures: Counter;
  readonly #rateLimited: Counter<"limit">;
  readonly #rateLimitedAlias: Counter<"limit">;
  readonly #deliveryLatency: Histogram;
  readonly #streamOpen: Histogram;
  readonly #httpDuration: Histogram<"route" | "method" | "status_code">;
  readonly #refusedReasons = new Set<string>();
  readonly #disconnectReasons = new Set<string>();
  readonly #resetReasons = new Set<string>();

  constructor(options: PrometheusMetricsOptions) {
    const registers = [this.#registry];
    const { gauges } = options;

    /** A gauge read at scrape time, under its name and, if it has one, its old name. */
    const gauge = (name: string, help: string, read: () => number, alias?: string) => {
      for (const each of alias === undefined ? [name] : [name, alias]) {
        new Gauge({
          name: each,
          help: each === name ? help : `${help} Alias of ${name}.`,
          registers,
          collect() {
            this.set(read());
          },
        });
      }
    };

    // The seed's first two, and their conforming twins.
    gauge("realtime_streams", "Open SSE streams on this pod.", () => gauges.connections());
    gauge("sse_connections_total", "Open SSE streams on this pod (the spec's name).", () =>
      gauges.connections(),
    );
    gauge("realtime_channels", "Channels with at least one local subscriber on this pod.", () =>
      gauges.channels(),
    );
    gauge(
      "sse_channels_total",
      "Channels with at least one local subscriber on this pod (the spec's name).",
      () => gauges.channels(),
    );

    // Counters with an old name are two counters that every call increments together: the
    // calls are per stream open or close, per publish, and per fan-out batch (not per
    // delivery), so the second increment costs nothing that shows.
    const counter = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[] = [],
    ): Counter<L> => new Counter({ name, help, labelNames, registers });
    const sentHelp = "Event deliveries written to SSE streams (one per stream per event).";
    this.#eventsSent = counter("realtime_events_sent_total", sentHelp);
    this.#eventsSentAlias = counter("sse_events_sent", `${sentHelp} The spec's name.`);
    const errorsHelp = "Publishes that failed at the broker (any broker, embedded or Redis).";
    this.#publishErrors = counter("realtime_publish_errors_total", errorsHelp);
    this.#publishErrorsAlias = counter("redis_publish_errors", `${errorsHelp} The spec's name.`);
    this.#published = counter("realtime_events_published_total", "Events accepted by the broker.");
    this.#replays = counter(
      "realtime_publish_replays_total",
      "Publishes that repeated an idempotency key within its window: answered with the first publish's position, nothing published.",
    );
    const refusedHelp = "SSE streams refused before they started, by error code.";
    this.#refused = counter("realtime_streams_refused_total", refusedHelp, ["reason"] as const);
    this.#refusedAlias = counter(
      "sse_connections_refused_total",
      `${refusedHelp} Alias of realtime_streams_refused_total.`,
      ["reason"] as const,
    );
    const closedHelp = "SSE streams that ended, by reason (client, slow, shutdown, ...).";
    this.#disconnects = counter("realtime_streams_closed_total", closedHelp, ["reason"] as const);
    this.#disconnectsAlias = counter(
      "sse_disconnects_total",
      `${closedHelp} Alias of realtime_streams_closed_total.`,
      ["reason"] as const,
    );

    this.#resets = counter(
      "realtime_stream_resets_total",
      "Resets sent to SSE streams, one per channel reset, by reason (trimmed, epoch_changed, unknown_cursor, gap): a client lost continuity on a channel and continues from now.",
      ["reason"] as const,
    );

    // Optional gauges, each read at scrape time; absent reads are not exported.
    const optional: [string, string, (() => number) | undefined, string?][] = [
      [
        "realtime_queued_bytes",
        "Bytes accepted for this pod's SSE streams and not yet written to the network (the fan-out queue; each stream's share is bounded by SLOW_CLIENT_MAX_BYTES).",
        gauges.queuedBytes,
        "sse_queued_bytes",
      ],
      [
        "realtime_stalled_streams",
        "SSE streams whose writes report backpressure now (clients not reading fast enough).",
        gauges.stalledStreams,
        "sse_stalled_streams",
      ],
      [
        "realtime_presence_users_online",
        "Distinct users with at least one presence-tracked SSE stream on this pod.",
        gauges.presenceUsers,
      ],
      [
        "realtime_replays_running",
        "Resuming SSE streams replaying missed events from history now (at most MAX_REPLAYS).",
        gauges.replaysRunning,
        "sse_replays_running",
      ],
      [
        "realtime_replays_waiting",
        "Resuming SSE streams waiting for a replay slot (connected, live events buffered).",
        gauges.replaysWaiting,
        "sse_replays_waiting",
      ],
      [
        "realtime_ready",
        "1 when this pod should get new streams (GET /readyz answers 200), 0 while it drains or while the broker is not confirmed live.",
        gauges.ready,
      ],
      [
        "realtime_broker_ready",
        "1 while the broker (Redis, or the embedded one) is confirmed live, 0 while connecting or re-subscribing (GET /readyz answers RT_ERR_BROKER_UNAVAILABLE).",
        gauges.brokerReady,
      ],
      [
        "realtime_draining",
        "1 from the moment this pod started shutting down (GET /readyz answers RT_ERR_SHUTTING_DOWN, open streams are being closed), else 0.",
        gauges.draining,
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
    for (const [name, help, read, alias] of optional) {
      if (read) gauge(name, help, read, alias);
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

    const limitedHelp =
      "Requests refused with 429 by a rate limit or a channel's broadcast budget, by limit.";
    this.#rateLimited = counter("realtime_http_requests_rate_limited_total", limitedHelp, [
      "limit",
    ] as const);
    this.#rateLimitedAlias = counter(
      "http_requests_rate_limited_total",
      `${limitedHelp} Alias of realtime_http_requests_rate_limited_total.`,
      ["limit"] as const,
    );

    this.#deliveryLatency = new Histogram({
      name: "realtime_delivery_latency_seconds",
      help: "From the broker accepting an event to this pod writing it to its streams, in seconds (one observation per event per pod; across pods it includes their clock skew).",
      buckets: DELIVERY_BUCKETS,
      registers,
    });
    this.#streamOpen = new Histogram({
      name: "realtime_stream_open_seconds",
      help: "From a stream request's arrival to the stream's first bytes written (authentication, access checks, broker subscriptions included; the replay after is not), in seconds.",
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.#httpDuration = new Histogram({
      name: "realtime_http_request_duration_seconds",
      help: `HTTP requests answered, from arrival to the answer's last byte, in seconds, by route template ("${UNMATCHED_ROUTE}": no route), method and status; the SSE stream route is not counted (realtime_stream_open_seconds).`,
      labelNames: ["route", "method", "status_code"] as const,
      buckets: REQUEST_BUCKETS,
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
    if (count > 0 && Number.isFinite(count)) {
      this.#eventsSent.inc(count);
      this.#eventsSentAlias.inc(count);
    }
  }

  eventPublished(): void {
    this.#published.inc();
  }

  publishFailed(): void {
    this.#publishErrors.inc();
    this.#publishErrorsAlias.inc();
  }

  publishReplayed(): void {
    this.#replays.inc();
  }

  connectionRefused(reason: string): void {
    const labels = { reason: boundedReason(reason, this.#refusedReasons) };
    this.#refused.inc(labels);
    this.#refusedAlias.inc(labels);
  }

  connectionClosed(reason: string): void {
    const labels = { reason: boundedReason(reason, this.#disconnectReasons) };
    this.#disconnects.inc(labels);
    this.#disconnectsAlias.inc(labels);
  }

  streamReset(reason: string): void {
    this.#resets.inc({ reason: boundedReason(reason, this.#resetReasons) });
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

  streamOpened(seconds: number): void {
    if (Number.isFinite(seconds)) this.#streamOpen.observe(Math.max(0, seconds));
  }

  /**
   * An HTTP request was answered after `seconds`. `route` is the route's template (never the
   * path: one series per route, whatever the ids in it), or {@link UNMATCHED_ROUTE}.
   */
  httpRequest(route: string, method: string, statusCode: number, seconds: number): void {
    if (!Number.isFinite(seconds)) return;
    this.#httpDuration.observe(
      { route, method, status_code: String(statusCode) },
      Math.max(0, seconds),
    );
  }

  /** A request was refused with 429 by `limit` (a fixed set of names: the limiter's). */
  rateLimited(limit: string): void {
    this.#rateLimited.inc({ limit });
    this.#rateLimitedAlias.inc({ limit });
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
