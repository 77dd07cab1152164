/**
 * Service configuration, read once from environment variables at start-up.
 *
 * Every value is validated here so that a typo fails the deploy with a message naming the
 * variable, instead of surfacing later as odd behaviour (an unset limit, a dev login left on in
 * production). All problems are reported together so one restart shows everything to fix.
 */
import { availableParallelism } from "node:os";
import {
  deepFreeze,
  type Env,
  EnvReader,
  MIN_JWT_SECRET_LENGTH,
  readCookieName,
  readRedis,
  readSecret,
  readTls,
  readTrustProxy,
  show,
} from "./config-env.ts";
import { readSecurityConfig, type SecurityConfig } from "./security/config.ts";

export type { SecurityConfig };
export { MIN_JWT_SECRET_LENGTH };

/** Thrown by {@link loadConfig} when one or more variables are invalid. */
export class ConfigError extends Error {
  /** One line per invalid variable, each naming the variable. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Log levels pino understands. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Accepted `NODE_ENV` values. Anything else is refused: "prod" must not mean development. */
export const NODE_ENVS = ["development", "production", "test"] as const;
export type NodeEnv = (typeof NODE_ENVS)[number];

export interface HttpConfig {
  /** TCP port to listen on (`PORT`). Default 8080; 0 picks a free port. */
  readonly port: number;
  /** Interface to bind (`HOST`). Default `"0.0.0.0"`. */
  readonly host: string;
  /**
   * Port of a second, internal listener that serves only `GET /metrics`, in plain HTTP/1.1
   * (`METRICS_PORT`); the public port then answers 404 for `/metrics`. Default null: `/metrics`
   * is served on the public port, as in development (deny it at the proxy: the reference nginx
   * does). 0 picks a free port.
   */
  readonly metricsPort: number | null;
  /**
   * Interface the metrics listener binds (`METRICS_HOST`). Default {@link host}: Prometheus
   * usually scrapes from another host (or pod); the port is internal because the proxy never
   * forwards to it. `127.0.0.1` when the scraper runs beside the process.
   */
  readonly metricsHost: string;
  /**
   * TLS certificate and key file paths (`TLS_CERT`, `TLS_KEY`); both or neither. Default null
   * (cleartext). With TLS the server speaks HTTP/2 via ALPN with HTTP/1.1 fallback.
   */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  /**
   * Cleartext HTTP/2 without upgrade (`HTTP2=h2c`), for pods behind a TLS-terminating proxy
   * that speaks h2c. Default false (plain HTTP/1.1 when TLS is off too).
   */
  readonly h2c: boolean;
  /**
   * Concurrent streams one HTTP/2 session may have (`HTTP2_MAX_CONCURRENT_STREAMS`), sent in
   * SETTINGS. Default 128, as nginx: a browser needs a handful per origin; raise it for an h2c
   * proxy that multiplexes many clients' SSE streams over few sessions (each stream holds a slot
   * for as long as it is open). Node's own default would be 2^32 − 1.
   */
  readonly h2MaxConcurrentStreams: number;
  /** Largest accepted request body, in bytes (`BODY_LIMIT_BYTES`). Default 65536. */
  readonly bodyLimitBytes: number;
  /**
   * Longest a client may take to send a request's headers, in ms (`HEADERS_TIMEOUT_MS`), and
   * the whole request, body included (`REQUEST_TIMEOUT_MS`); then the connection (HTTP/1.1) or
   * the stream (HTTP/2) is dropped. Slowloris defence. They govern receiving the request only:
   * an SSE response lives on. Defaults 10000 and 30000.
   */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /**
   * Which proxies' `X-Forwarded-For` to believe for the client IP (`TRUST_PROXY`): false
   * (default: the socket's peer is the client), a hop count, or proxy addresses/CIDRs.
   */
  readonly trustProxy: false | number | readonly string[];
}

export interface AuthConfig {
  /**
   * HS256 signing key (`JWT_SECRET`), at least 32 characters. Required in production; in
   * development a random per-process key is generated (tokens die with the process).
   */
  readonly secret: string;
  /** True when {@link secret} was generated because `JWT_SECRET` was unset (development only). */
  readonly secretGenerated: boolean;
  /** `iss` claim issued and required (`JWT_ISSUER`). Default `"realtime"`. */
  readonly issuer: string;
  /** `aud` claim issued and required (`JWT_AUDIENCE`). Default `"realtime"`. */
  readonly audience: string;
  /** Lifetime of issued tokens and of the session cookie, in seconds (`TOKEN_TTL_SECONDS`). Default 86400. */
  readonly tokenTtlSeconds: number;
  /**
   * Whether `POST /api/auth/dev-login` issues tokens to anyone who names themselves
   * (`AUTH_DEV_LOGIN`). Default true outside production, false in production unless `"true"`.
   */
  readonly devLogin: boolean;
  /** Name of the HttpOnly session cookie (`COOKIE_NAME`). Default `"rt_session"`. */
  readonly cookieName: string;
  /**
   * Whether the session cookie carries `Secure`. Derived: true when TLS is configured or in
   * production (where a TLS-terminating proxy is assumed in front of the pod).
   */
  readonly cookieSecure: boolean;
}

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisConfig {
  /**
   * How events fan out. Derived: `"cluster"` when `REDIS_CLUSTER_NODES` is set, `"standalone"`
   * when only `REDIS_URL` is set, `"embedded"` (in-process broker, single pod) otherwise.
   */
  readonly mode: "embedded" | "standalone" | "cluster";
  /** `redis://` or `rediss://` URL (`REDIS_URL`). Default null. In cluster mode it may carry credentials. */
  readonly url: string | null;
  /** Key and channel prefix (`REDIS_PREFIX`). Default `"realtime"`. */
  readonly prefix: string;
  /** Cluster seed nodes (`REDIS_CLUSTER_NODES`, comma-separated `host:port`). Default empty. */
  readonly clusterNodes: readonly RedisNode[];
  /**
   * Replicas that must hold a publish before it is acknowledged (`REDIS_WAIT_REPLICAS`, Redis
   * `WAIT`). Default 0. Set 1 on a Cluster (or a replicated Redis) with a replica per master,
   * so a failover cannot drop an acknowledged event (see operations.md).
   */
  readonly waitReplicas: number;
  /** How long a publish waits for them, in ms (`REDIS_WAIT_TIMEOUT_MS`, 1–1500). Default 500. */
  readonly waitTimeoutMs: number;
}

export interface LimitsConfig {
  /** Most concurrent SSE streams per pod (`MAX_CONNECTIONS`). Default 10000. */
  readonly maxConnections: number;
  /** Most channels one SSE stream may carry (`MAX_CHANNELS_PER_STREAM`). Default 16. */
  readonly maxChannelsPerStream: number;
  /** Bytes queued for a client that is not reading before it is cut off (`SLOW_CLIENT_MAX_BYTES`). Default 1048576. */
  readonly slowClientMaxBytes: number;
  /** Milliseconds a client may stay unwritable before it is cut off (`SLOW_CLIENT_MAX_STALL_MS`). Default 10000. */
  readonly slowClientMaxStallMs: number;
  /** Longest chat message, in characters (`MAX_CHAT_CONTENT_LENGTH`). Default 4000. */
  readonly maxChatContentLength: number;
  /**
   * Resuming streams replaying history at once on a pod (`MAX_REPLAYS`); more wait their turn,
   * connected. Each holds one page of history (64 events) while its client drains it. Default 32.
   */
  readonly maxReplays: number;
  /** Replays of one user at once on a pod (`MAX_REPLAYS_PER_USER`). Default 2. */
  readonly maxReplaysPerUser: number;
}

/** What the broker keeps per channel, and for how long. */
export interface ChannelStateConfig {
  /**
   * How long a channel's epoch and offset outlive its last use — a publish, a position read, a
   * pod's subscribers (pods read every subscribed channel's position every 15 s, or every
   * quarter of this if shorter) — in ms (`CHANNEL_IDLE_TTL_MS`). Also the life of a Redis
   * channel's presence version counter, and the longest its history outlives it. A client
   * resuming after that gets a `reset` for the channel. Default 600000 (10 minutes); 1000–86400000.
   */
  readonly idleTtlMs: number;
  /**
   * Embedded mode: channels held in memory at most (`MAX_CHANNELS`); past it the least recently
   * used channel without subscribers is released, and when every one has subscribers a new
   * channel is refused with 503. Default 100000.
   */
  readonly maxChannels: number;
  /**
   * Embedded mode: bytes of history held in memory over every channel (`HISTORY_MAX_BYTES`);
   * past it the least recently published channels lose their oldest events first. Default
   * 67108864 (64 MiB).
   */
  readonly historyMaxBytes: number;
}

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

export interface PublishConfig {
  /**
   * How long a publish with an `Idempotency-Key` is remembered, in ms (`IDEMPOTENCY_WINDOW_MS`):
   * a repeat of the key within it (same publisher, same channel) publishes nothing and gets the
   * first answer. Counted from the first publish. 1000–86400000; default 600000 (10 minutes).
   */
  readonly idempotencyWindowMs: number;
}

export interface ShutdownConfig {
  /** How long to let streams and requests finish on SIGTERM, in ms (`SHUTDOWN_DRAIN_MS`). Default 5000. */
  readonly drainMs: number;
}

export interface JobsConfig {
  /** Jobs one user may have queued or running at once (`JOBS_MAX_PER_USER`). Default 2. */
  readonly maxPerUser: number;
  /**
   * Renders at once per process (`JOBS_CONCURRENCY`): worker threads of the embedded pod, or
   * of one `npm run worker` process. Default: CPUs − 1, at least 1, at most 4.
   */
  readonly concurrency: number;
  /** Frames per animation (`JOBS_FRAMES`). Default 24. */
  readonly frames: number;
  /** Long side of the animation in pixels (`JOBS_FRAME_SIZE`). Default 320. */
  readonly frameSize: number;
  /** Least time between two progress events of one job, in ms (`JOBS_PROGRESS_INTERVAL_MS`). Default 250. */
  readonly progressIntervalMs: number;
  /** Attempts a job gets when its worker dies (`JOBS_MAX_ATTEMPTS`). Default 2. */
  readonly maxAttempts: number;
  /**
   * Redis mode: the queue lock of a running job, in ms (`JOBS_LOCK_MS`); a job whose worker
   * stopped renewing it is retried (or failed) after about this long to twice this. Default 30000.
   */
  readonly lockMs: number;
  /** How long finished jobs and their GIFs are kept, in seconds (`JOBS_RESULT_TTL_SECONDS`). Default 3600. */
  readonly resultTtlSeconds: number;
  /** Embedded mode: directory for GIFs (`JOBS_MEDIA_DIR`). Default null: a temp dir removed on exit. */
  readonly mediaDir: string | null;
}

export interface PresenceConfig {
  /**
   * How long a user stays online after their last connection in a channel closed, in ms
   * (`PRESENCE_GRACE_MS`), so a reconnect causes no offline/online pair. Default 5000; 0 = none.
   */
  readonly graceMs: number;
  /** A pod silent this long is dead and its users' presence is reaped, in ms (`PRESENCE_TTL_MS`). Default 10000. */
  readonly ttlMs: number;
  /**
   * Interval of each pod's presence heartbeat and reaper attempt, in ms (`PRESENCE_REFRESH_MS`).
   * Must be under half of {@link ttlMs}. Default 3000. A crashed pod's users go offline within
   * about ttlMs + refreshMs.
   */
  readonly refreshMs: number;
  /**
   * Most users one presence snapshot lists (`PRESENCE_SNAPSHOT_MAX_USERS`); a larger room's
   * snapshot says `truncated: true` and its `total`. 5,000 users were a 539 KB answer per read.
   * Default 1000; 0 = no cap.
   */
  readonly snapshotMaxUsers: number;
}

export interface Config {
  /** `NODE_ENV`. Default `"development"`. */
  readonly nodeEnv: NodeEnv;
  /** Derived: `nodeEnv === "production"`. */
  readonly isProduction: boolean;
  /** pino level (`LOG_LEVEL`). Default `"info"`. */
  readonly logLevel: LogLevel;
  readonly http: HttpConfig;
  readonly auth: AuthConfig;
  readonly redis: RedisConfig;
  readonly limits: LimitsConfig;
  readonly channels: ChannelStateConfig;
  readonly sse: SseConfig;
  readonly publish: PublishConfig;
  readonly shutdown: ShutdownConfig;
  readonly jobs: JobsConfig;
  readonly presence: PresenceConfig;
  /** Rate limits, per-user and per-IP connection caps, CORS (see docs/security.md). */
  readonly security: SecurityConfig;
}

/**
 * Builds the {@link Config} from environment variables (see each field for its variable and
 * default). Throws {@link ConfigError} listing every invalid variable.
 */
export function loadConfig(env: Env = process.env): Config {
  const r = new EnvReader(env);

  const nodeEnv = r.oneOf("NODE_ENV", NODE_ENVS, "development");
  const isProduction = nodeEnv === "production";
  const logLevel = r.oneOf("LOG_LEVEL", LOG_LEVELS, "info");

  const tls = readTls(r);
  const http2 = r.raw("HTTP2");
  const h2c = http2 === "h2c";
  if (http2 !== undefined && !h2c) {
    r.problems.push(`HTTP2 must be "h2c" or unset, got ${show(http2)}`);
  }
  if (h2c && tls) {
    // h2c is cleartext by definition; with a certificate the server already offers h2 via ALPN.
    r.problems.push("HTTP2=h2c cannot be combined with TLS_CERT/TLS_KEY (TLS already offers h2)");
  }
  const port = r.int("PORT", 8080, 0, 65535);
  const host = r.string("HOST", "0.0.0.0");
  const metricsPort =
    r.raw("METRICS_PORT") === undefined ? null : r.int("METRICS_PORT", 0, 0, 65535);
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === port) {
    r.problems.push(`METRICS_PORT must differ from PORT (${port}): it is a listener of its own`);
  }
  const http: HttpConfig = {
    port,
    host,
    metricsPort,
    metricsHost: r.string("METRICS_HOST", host),
    tls,
    h2c,
    h2MaxConcurrentStreams: r.int("HTTP2_MAX_CONCURRENT_STREAMS", 128, 1, 2 ** 31 - 1),
    bodyLimitBytes: r.int("BODY_LIMIT_BYTES", 65536),
    headersTimeoutMs: r.int("HEADERS_TIMEOUT_MS", 10000, 100),
    requestTimeoutMs: r.int("REQUEST_TIMEOUT_MS", 30000, 100),
    trustProxy: readTrustProxy(r),
  };
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    // Node refuses a headers timeout above the request timeout.
    r.problems.push(
      `HEADERS_TIMEOUT_MS (${http.headersTimeoutMs}) must not exceed REQUEST_TIMEOUT_MS (${http.requestTimeoutMs})`,
    );
  }

  const auth: AuthConfig = {
    ...readSecret(r, isProduction),
    issuer: r.string("JWT_ISSUER", "realtime"),
    audience: r.string("JWT_AUDIENCE", "realtime"),
    tokenTtlSeconds: r.int("TOKEN_TTL_SECONDS", 86400),
    devLogin: r.bool("AUTH_DEV_LOGIN", !isProduction),
    cookieName: readCookieName(r),
    cookieSecure: tls !== null || isProduction,
  };

  const redis = readRedis(r);

  const limits: LimitsConfig = {
    maxConnections: r.int("MAX_CONNECTIONS", 10000),
    maxChannelsPerStream: r.int("MAX_CHANNELS_PER_STREAM", 16),
    slowClientMaxBytes: r.int("SLOW_CLIENT_MAX_BYTES", 1048576),
    slowClientMaxStallMs: r.int("SLOW_CLIENT_MAX_STALL_MS", 10000),
    maxChatContentLength: r.int("MAX_CHAT_CONTENT_LENGTH", 4000),
    maxReplays: r.int("MAX_REPLAYS", 32, 1),
    maxReplaysPerUser: r.int("MAX_REPLAYS_PER_USER", 2, 1),
  };

  const channels: ChannelStateConfig = {
    idleTtlMs: r.int("CHANNEL_IDLE_TTL_MS", 600_000, 1_000, 86_400_000),
    maxChannels: r.int("MAX_CHANNELS", 100_000, 1),
    historyMaxBytes: r.int("HISTORY_MAX_BYTES", 64 * 1024 * 1024, 1024),
  };

  const sse: SseConfig = {
    heartbeatIntervalMs: r.int("HEARTBEAT_INTERVAL_MS", 15000),
    retryMs: r.int("RETRY_MS", 2000),
    retryJitterMs: r.int("RETRY_JITTER_MS", 3000, 0),
  };

  const publish: PublishConfig = {
    idempotencyWindowMs: r.int("IDEMPOTENCY_WINDOW_MS", 600_000, 1000, 86_400_000),
  };

  const shutdown: ShutdownConfig = { drainMs: r.int("SHUTDOWN_DRAIN_MS", 5000) };

  const presence: PresenceConfig = {
    graceMs: r.int("PRESENCE_GRACE_MS", 5000, 0),
    ttlMs: r.int("PRESENCE_TTL_MS", 10000, 1000),
    refreshMs: r.int("PRESENCE_REFRESH_MS", 3000, 100),
    snapshotMaxUsers: r.int("PRESENCE_SNAPSHOT_MAX_USERS", 1000, 0),
  };
  if (presence.refreshMs * 2 >= presence.ttlMs) {
    // One late heartbeat must not get a live pod reaped.
    r.problems.push(
      `PRESENCE_REFRESH_MS (${presence.refreshMs}) must be under half of PRESENCE_TTL_MS (${presence.ttlMs})`,
    );
  }

  const jobs: JobsConfig = {
    maxPerUser: r.int("JOBS_MAX_PER_USER", 2),
    concurrency: r.int("JOBS_CONCURRENCY", defaultJobConcurrency(), 1, 64),
    frames: r.int("JOBS_FRAMES", 24, 1, 600),
    frameSize: r.int("JOBS_FRAME_SIZE", 320, 16, 1280),
    progressIntervalMs: r.int("JOBS_PROGRESS_INTERVAL_MS", 250, 0),
    maxAttempts: r.int("JOBS_MAX_ATTEMPTS", 2, 1, 10),
    lockMs: r.int("JOBS_LOCK_MS", 30000, 500),
    resultTtlSeconds: r.int("JOBS_RESULT_TTL_SECONDS", 3600),
    mediaDir: r.raw("JOBS_MEDIA_DIR") ?? null,
  };

  const security = readSecurityConfig(r);

  if (r.problems.length > 0) throw new ConfigError(r.problems);

  return deepFreeze({
    nodeEnv,
    isProduction,
    logLevel,
    http,
    auth,
    redis,
    limits,
    channels,
    sse,
    publish,
    shutdown,
    jobs,
    presence,
    security,
  });
}

/** Render threads by default: leave one CPU to the event loop, use at most 4. */
export function defaultJobConcurrency(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}
