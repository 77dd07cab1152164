/**
 * Builds the service — Fastify app, broker, hub, metrics — without listening, so tests use the
 * same wiring as production (`main.ts` only adds `listen` and signal handling).
 */
import { readFileSync } from "node:fs";
import cookie from "@fastify/cookie";
import { AJV_OPTIONS, frameworkErrors, registerErrorHandling } from "@realtime/fastify";
import { createJobSystem, type JobSystem } from "@realtime/jobs";
import {
  appError,
  type Broker,
  Errors,
  type HistoryStore,
  Hub,
  MemoryBroker,
  MemoryPresenceStore,
  Presence,
  type PresenceStore,
} from "@realtime/server";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
} from "fastify";
import { ChannelAccess } from "./auth/access.ts";
import { GrantWatch } from "./auth/grant-watch.ts";
import { type Auth, type AuthEvents, createAuth } from "./auth.ts";
import { redisBrokerOptions } from "./broker-options.ts";
import { clientErrorHandler } from "./client-errors.ts";
import type { Config } from "./config.ts";
import { registerHttpMetrics } from "./http-metrics.ts";
import { loggerOptions } from "./logger-options.ts";
import { createMetricsServer } from "./metrics-server.ts";
import { PrometheusMetrics } from "./prometheus-metrics.ts";
import { deliveryLog, registerRequestIdEcho, requestIdOf } from "./request-id.ts";
import { requestLoggerFactory } from "./request-logger.ts";
import { registerAuthRoutes } from "./routes/auth.ts";
import { registerChatRoutes } from "./routes/chat.ts";
import {
  registerHealthRoutes,
  registerMetricsElsewhere,
  registerMetricsRoute,
} from "./routes/health.ts";
import { registerJobRoutes } from "./routes/jobs.ts";
import { registerPageRoutes } from "./routes/page.ts";
import { registerPresenceRoute } from "./routes/presence.ts";
import { registerRealtimeRoutes } from "./routes/realtime.ts";
import {
  memoizeAuthentication,
  registerSecurity,
  registerSecurityHeaders,
  type Security,
} from "./security/index.ts";

export interface BuildOptions {
  /** Use this broker instead of the one the config selects (tests share one between pods). */
  broker?: Broker;
  /** Use this presence store instead of the one the config selects (tests share one). */
  presenceStore?: PresenceStore;
  /** pino options; default from the config (pretty in development, JSON in production). */
  logger?: FastifyServerOptions["logger"];
  /**
   * The hub's randomness (the drain's close moments, the `retry:` jitter); default
   * `Math.random`. Tests pin it to know when a drain closes each stream.
   */
  random?: () => number;
}

export interface Service {
  readonly app: FastifyInstance;
  /**
   * The internal listener serving `/metrics` when `METRICS_PORT` is set (then the public app
   * answers 404 for it), else null. Built, not listening: the caller listens on
   * `METRICS_HOST:METRICS_PORT`; `shutdown` closes it last.
   */
  readonly metricsApp: FastifyInstance | null;
  readonly hub: Hub;
  readonly broker: Broker;
  readonly auth: Auth;
  readonly metrics: PrometheusMetrics;
  /** Who is online in which room, over every pod. */
  readonly presence: Presence;
  /** Async jobs (`POST /api/generate/video`): worker threads, or a BullMQ queue in Redis mode. */
  readonly jobs: JobSystem;
  /** Rate limits, connection caps, browser and transport defences (docs/security.md). */
  readonly security: Security;
  /** The channel access rules every path asks (auth/access.ts). */
  readonly access: ChannelAccess;
  /** Re-checks of open streams' backend grants; null without `AUTHZ_URL`. */
  readonly grantWatch: GrantWatch | null;
  /**
   * Graceful stop: readiness turns false and new streams are refused at once, open streams
   * are closed with jittered `retry:` hints spread over `drainMs`, then the server closes.
   */
  shutdown(drainMs?: number): Promise<void>;
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<Service> {
  const app = Fastify({
    ...serverOptions(config),
    logger: options.logger ?? loggerOptions(config),
    bodyLimit: config.http.bodyLimitBytes,
    // Slowloris: the whole request must arrive within this (headers: see security/http.ts).
    requestTimeout: config.http.requestTimeoutMs,
    trustProxy: trustProxy(config.http.trustProxy),
    ajv: AJV_OPTIONS,
    // X-Request-Id: kept when it is a plain token, else a new UUID; the log's reqId, echoed.
    genReqId: requestIdOf,
    // Each request's logger (with that id) is built when the request first logs, not before.
    childLoggerFactory: requestLoggerFactory,
    // The router's refusals (undecodable URL, over-long path parameter) as catalogue JSON.
    frameworkErrors,
    // And Node's HTTP/1.1 parser's (431, 408, 413, 400), before any route runs.
    clientErrorHandler,
    // By the time the server closes, the drain has ended every stream: close idle keep-alive
    // connections at once, but let a POST still in flight finish (closing it would leave its
    // client unsure whether the event was published). A cleartext h2 server cannot tell idle
    // sessions apart, so there every connection is closed.
    forceCloseConnections: config.http.h2c ? true : "idle",
    // Requests that arrive once closing has begun get our catalogue 503 (hook below).
    return503OnClosing: false,
  }) as unknown as FastifyInstance;

  const broker = options.broker ?? (await createBroker(config, app.log));
  const bus = broker instanceof MemoryBroker ? broker.bus : null;
  let hub: Hub | undefined;
  let presence: Presence | undefined;
  const metrics = new PrometheusMetrics({
    gauges: {
      connections: () => hub?.connectionCount ?? 0,
      channels: () => hub?.channelCount ?? 0,
      presenceUsers: () => presence?.usersOnline ?? 0,
      queuedBytes: () => hub?.queuedBytes ?? 0,
      stalledStreams: () => hub?.stalledCount ?? 0,
      replaysRunning: () => hub?.replays.running ?? 0,
      replaysWaiting: () => hub?.replays.waiting ?? 0,
      // What GET /readyz answers (the plugin's route), and each of its two causes.
      ready: () => (hub?.accepting && broker.ready() ? 1 : 0),
      brokerReady: () => (broker.ready() ? 1 : 0),
      draining: () => (hub && !hub.accepting ? 1 : 0),
      ...(bus && {
        brokerChannels: () => bus.stats.channels,
        historyBytes: () => bus.stats.historyBytes,
      }),
    },
  });
  const history = "read" in broker ? (broker as Broker & HistoryStore) : undefined;
  hub = new Hub({
    broker,
    history,
    metrics,
    maxConnections: config.limits.maxConnections,
    heartbeatIntervalMs: config.sse.heartbeatIntervalMs,
    retryMs: config.sse.retryMs,
    retryJitterMs: config.sse.retryJitterMs,
    maxQueuedBytes: config.limits.slowClientMaxBytes,
    maxStallMs: config.limits.slowClientMaxStallMs,
    // Reading a channel's position keeps it (Redis: its meta hash) alive: check every
    // subscribed channel well within its idle TTL.
    positionCheckIntervalMs: Math.min(15_000, Math.floor(config.channels.idleTtlMs / 4)),
    maxConcurrentReplays: config.limits.maxReplays,
    maxReplaysPerUser: config.limits.maxReplaysPerUser,
    onDelivered: deliveryLog(app.log),
    random: options.random,
  });
  const presenceStore = options.presenceStore ?? (await createPresenceStore(config, app.log));
  const presenceLog = app.log.child({ component: "presence" });
  presence = new Presence({
    hub,
    store: presenceStore,
    refreshMs: config.presence.refreshMs,
    metrics,
    logger: { warn: (message) => presenceLog.warn(message) },
  });
  // One verification per request, shared by the limits and the route.
  const auth = memoizeAuthentication(
    createAuth(config.auth, Date.now, jwksEvents(config, metrics, app.log)),
  );
  const accessLog = app.log.child({ component: "access" });
  const access = new ChannelAccess({
    config: config.access,
    metrics,
    warn: (message) => accessLog.warn(message),
  });
  const grantWatch =
    config.access.authzUrl === null
      ? null
      : new GrantWatch({
          access,
          hub,
          intervalMs: config.access.authzCacheMs,
          concurrency: config.access.authzMaxConcurrency,
          metrics,
        });

  let closing = false;
  registerErrorHandling(app);
  registerRequestIdEcho(app);
  // Times every answer, refusals by the hooks below included (not the SSE stream route).
  registerHttpMetrics(app, metrics);
  // First of the onRequest hooks: every refusal of the ones after it carries the headers.
  registerSecurityHeaders(app, config);
  app.addHook("onRequest", (_request, _reply, done) => {
    done(closing ? appError(Errors.SHUTTING_DOWN, undefined, { "Retry-After": "1" }) : undefined);
  });
  // OpenAPI generated from the route schemas, served at /docs: outside production, and in
  // production with OPENAPI_DOCS=true. First, so it sees every route registered after it.
  if (config.http.openapiDocs) {
    const { registerOpenApi } = await import("./openapi.ts");
    await registerOpenApi(app, { cookieName: config.auth.cookieName });
  }
  await app.register(cookie);
  const security = await registerSecurity(app, { config, auth, metrics });
  registerAuthRoutes(app, { auth, config });
  await registerRealtimeRoutes(app, { hub, broker, auth, access, grantWatch, config, metrics });
  registerChatRoutes(app, { hub, auth, access, config });
  registerPresenceRoute(app, {
    presence,
    broker,
    auth,
    access,
    maxUsers: config.presence.snapshotMaxUsers,
  });
  const jobs = await createJobSystem(config, {
    events: hub,
    log: app.log.child({ component: "jobs" }),
  });
  registerJobRoutes(app, { jobs, auth });
  registerHealthRoutes(app);
  const metricsApp =
    config.http.metricsPort === null ? null : createMetricsServer(metrics, app.log);
  if (metricsApp === null) registerMetricsRoute(app, metrics);
  else registerMetricsElsewhere(app);
  registerPageRoutes(app);

  const liveHub = hub;
  const livePresence = presence;
  let stopping: Promise<void> | undefined;
  const shutdown = (drainMs = config.shutdown.drainMs) => {
    // Readiness turns false at once, before anything below has to wait, so the load balancer
    // stops sending new streams here first.
    liveHub.stopAccepting();
    stopping ??= (async () => {
      // Each step past its budget says so (at warn): a pod that takes long to stop names why.
      const step = shutdownStep(app.log);
      // First, so unfinished embedded jobs announce their end while streams are still open.
      await step("jobs", () => jobs.close());
      // Stopped before the drain closes anything (stop() stops recording closes at once): this
      // pod's users are handed over — reaped one grace period later, by another pod — instead
      // of leaving one by one. Not awaited first, so readiness turns false without delay.
      const handover = livePresence.stop();
      await step("drain", () => liveHub.drain(drainMs), drainMs + SLOW_STEP_MS);
      await step("presence handover", () => handover);
      await step("hub", () => liveHub.close());
      grantWatch?.close();
      closing = true;
      await step("http server", () => app.close());
      // Last of the listeners: the drain stays visible to the scraper until the end.
      await step("metrics server", async () => metricsApp?.close());
      await step("limits", () => security.close());
      await step("presence store", () => presenceStore.close());
      await step("broker", () => broker.close());
    })();
    return stopping;
  };
  return {
    app,
    metricsApp,
    hub: liveHub,
    broker,
    auth,
    metrics,
    presence: livePresence,
    jobs,
    security,
    access,
    grantWatch,
    shutdown,
  };
}

/** A shutdown step longer than this (beyond the drain's own window) is logged. */
const SLOW_STEP_MS = 1000;

/** Runs shutdown steps, logging at warn each one that takes longer than its budget. */
function shutdownStep(log: FastifyBaseLogger) {
  return async (name: string, run: () => Promise<unknown>, budgetMs = SLOW_STEP_MS) => {
    const started = performance.now();
    await run();
    const tookMs = Math.round(performance.now() - started);
    if (tookMs > budgetMs) log.warn({ step: name, tookMs }, `shutdown: ${name} took ${tookMs} ms`);
  };
}

/** Counts and logs failed JWKS fetches; the log names the set's address and the cause, no token. */
function jwksEvents(
  config: Config,
  metrics: PrometheusMetrics,
  log: FastifyBaseLogger,
): AuthEvents {
  if (config.auth.jwks === null) return {};
  const { origin, pathname } = new URL(config.auth.jwks.url);
  const authLog = log.child({ component: "auth" });
  return {
    jwksFetchFailed(error) {
      metrics.jwksFetchFailed();
      authLog.warn(
        { jwks: origin + pathname, reason: describeFetchError(error) },
        "the JWKS could not be fetched: tokens are checked with the keys fetched before, unknown key ids are refused",
      );
    },
  };
}

/** `fetch failed (ECONNREFUSED)`, `JWKSTimeout: …`: what went wrong, in one line. */
function describeFetchError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown } | undefined;
  const code = typeof cause?.code === "string" ? ` (${cause.code})` : "";
  return `${error.name}: ${error.message}${code}`;
}

async function createBroker(config: Config, log: FastifyBaseLogger): Promise<Broker> {
  if (config.redis.mode === "embedded") {
    const { idleTtlMs, maxChannels, historyMaxBytes } = config.channels;
    return new MemoryBroker({
      busOptions: {
        idleTtlMs,
        maxChannels,
        maxHistoryBytes: historyMaxBytes,
        retention: {
          size: config.channels.historyMaxLength,
          ttlMs: config.channels.historyTtlSeconds * 1000,
        },
      },
    });
  }
  const { RedisBroker } = await import("@realtime/redis");
  const brokerLog = log.child({ component: "redis-broker" });
  return new RedisBroker({
    ...redisBrokerOptions(config),
    logger: {
      info: (message) => brokerLog.info(message),
      warn: (message) => brokerLog.warn(message),
      error: (message) => brokerLog.error(message),
    },
  });
}

async function createPresenceStore(config: Config, log: FastifyBaseLogger): Promise<PresenceStore> {
  const timings = { graceMs: config.presence.graceMs, ttlMs: config.presence.ttlMs };
  if (config.redis.mode === "embedded") return new MemoryPresenceStore(timings);
  const { RedisPresenceStore } = await import("@realtime/redis");
  const storeLog = log.child({ component: "redis-presence" });
  return new RedisPresenceStore({
    ...timings,
    url: config.redis.url ?? undefined,
    clusterNodes: config.redis.mode === "cluster" ? [...config.redis.clusterNodes] : undefined,
    prefix: config.redis.prefix,
    versionTtlMs: config.channels.idleTtlMs,
    waitReplicas: config.redis.waitReplicas,
    waitTimeoutMs: config.redis.waitTimeoutMs,
    logger: { warn: (message) => storeLog.warn(message) },
  });
}

function serverOptions(config: Config): Partial<FastifyServerOptions> & Record<string, unknown> {
  const { tls, h2c } = config.http;
  // A session over the limit has further streams refused by the protocol itself
  // (REFUSED_STREAM) before any request reaches a route.
  const settings = { maxConcurrentStreams: config.http.h2MaxConcurrentStreams };
  if (tls) {
    return {
      http2: true,
      https: {
        allowHTTP1: true,
        key: readFileSync(tls.keyFile),
        cert: readFileSync(tls.certFile),
        settings,
      },
    };
  }
  if (h2c) return { http2: true, http: { settings } };
  return {};
}

/** Fastify's `trustProxy` for `TRUST_PROXY`: a hop count trusts that many proxies. */
function trustProxy(
  value: Config["http"]["trustProxy"],
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (value === false) return false;
  if (typeof value === "number") return (_address, hop) => hop < value;
  return [...value];
}
