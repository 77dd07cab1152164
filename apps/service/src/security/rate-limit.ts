/**
 * Rate limits on every route that publishes, mints credentials, opens a stream or reads
 * presence, with `@fastify/rate-limit` (its Redis store in Redis mode, so all pods share one
 * budget; in memory in embedded mode):
 *
 * - per user (from the verified token) on chat, jobs, stream opens and presence reads, per
 *   service token on the publish API, per client IP on dev-login and for requests without a
 *   valid token;
 * - per client IP on stream opens, when `RATE_LIMIT_STREAMS_PER_IP_MAX` is set (a second check
 *   on the same route, after the per-user one);
 * - per user on the channels stream opens name (`RATE_LIMIT_STREAM_CHANNELS_MAX`: a stream of
 *   n channels spends n), since what an open can cost the shared Redis grows with its channels;
 * - per channel (the broadcast budget) on chat and the publish API together, so a room cannot
 *   flood every pod however many accounts post into it. Counted only for requests that are
 *   authenticated and allowed to publish, so an anonymous client cannot spend a room's budget.
 *
 * Each route declares its own limit (`config: { limit }`, see `route-options.ts`): the one
 * setting it spends, how requests are keyed, whether it spends a channel's budget; a route
 * that opens streams says so (`config: { opensStream: true }`). {@link RateLimits.routes} lists
 * what every route got.
 *
 * Stream opens are counted in `onRequest`/`preValidation`, before the stream admission
 * (`streams.ts`, a `preHandler`) takes a per-user slot and before the hub does any work.
 *
 * Over a limit: 429 `RT_ERR_RATE_LIMITED` with `Retry-After` (seconds) and the catalogue body.
 * A limit that cannot be checked (Redis down) is skipped: the request goes on (fail open).
 */
import rateLimit, { normalizeIP } from "@fastify/rate-limit";
import type { ChannelName } from "@realtime/protocol";
import { appError, Errors } from "@realtime/server";
import type { FastifyInstance, FastifyRequest, RouteOptions } from "fastify";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";
import type { LimitsRedis } from "./redis.ts";
import { addHook, ROUTE_LIMIT_SETTINGS } from "./route-options.ts";

/** `realtime_http_requests_rate_limited_total{limit}` label values. */
export type LimitName =
  | keyof typeof ROUTE_LIMIT_SETTINGS
  | "channel"
  | "streams_per_ip"
  | "stream_channels";

/**
 * Entries each in-memory counter (one per route) keeps; the least recently used key goes first.
 * The plugin's own default (5000) applies per route unless given here.
 */
const CACHE_ENTRIES = 20_000;

export interface RateLimitDeps {
  readonly config: Config;
  readonly auth: Auth;
  readonly metrics: PrometheusMetrics;
  readonly redis: LimitsRedis | null;
}

export interface RateLimits {
  /** Every route added after the limiter (`"METHOD url"`), with the limits it got (none: empty). */
  readonly routes: ReadonlyMap<string, readonly LimitName[]>;
}

/** Registers the limiter. Call before the routes are registered (it hooks `onRoute`). */
export async function registerRateLimits(
  app: FastifyInstance,
  deps: RateLimitDeps,
): Promise<RateLimits> {
  const { config, auth, metrics, redis } = deps;
  const limits = config.security.rateLimit;

  const ipKey = (request: FastifyRequest) => `ip:${normalizeIP(request.ip)}`;
  const identityKey = async (request: FastifyRequest) => {
    try {
      const identity = await auth.authenticate(request);
      return identity.kind === "user" ? `u:${identity.userId}` : `s:${identity.service}`;
    } catch {
      // No valid token: the route answers 401, but the attempts still count, per address.
      return ipKey(request);
    }
  };

  const routes = new Map<string, LimitName[]>();

  const retryAfter = (ttlMs: number) => String(Math.max(1, Math.ceil(ttlMs / 1000)));

  /** A refused stream open is a refused stream too. */
  const countRefusal = (route: RouteOptions, limit: LimitName) => {
    metrics.rateLimited(limit);
    if (route.config?.opensStream) metrics.connectionRefused(Errors.RATE_LIMITED.code);
  };

  // Before the plugin's own onRoute hook, which reads `config.rateLimit`.
  let channelBudget: ((request: FastifyRequest) => Promise<BudgetResult>) | null = null;
  let streamsPerIp: ((request: FastifyRequest) => Promise<BudgetResult>) | null = null;
  let streamChannels: ((request: FastifyRequest) => Promise<BudgetResult>) | null = null;
  const channelOfRequest = new WeakMap<FastifyRequest, ChannelName>();
  app.addHook("onRoute", (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const applied: LimitName[] = [];
    for (const method of methods) routes.set(`${method} ${route.url}`, applied);
    // A GET's HEAD twin shares its options, so it is limited like the GET (with a counter of
    // its own), never a way around it.
    const spec = route.config?.limit;
    const opensStream = route.config?.opensStream === true;
    const max = spec ? limits[ROUTE_LIMIT_SETTINGS[spec.name]] : 0;
    if (spec && max > 0) {
      applied.push(spec.name);
      route.config = {
        ...route.config,
        rateLimit: {
          max,
          timeWindow: limits.windowMs,
          keyGenerator: spec.by === "ip" ? ipKey : identityKey,
          cache: CACHE_ENTRIES,
          onExceeded: () => countRefusal(route, spec.name),
        },
      } as RouteOptions["config"];
    }
    if (opensStream && limits.streamsPerIp > 0) {
      applied.push("streams_per_ip");
      // After the per-user limit (the plugin's onRequest hook), before the query is validated
      // and before the stream admission's preHandler takes a slot.
      addHook(route, "preValidation", async (request: FastifyRequest) => {
        if (streamsPerIp === null) return;
        const result = await streamsPerIp(request);
        if (!result.isAllowed && result.isExceeded) {
          countRefusal(route, "streams_per_ip");
          throw appError(
            Errors.RATE_LIMITED,
            `Too many streams opened from this address; retry in ${retryAfter(result.ttl)} s`,
            { "Retry-After": retryAfter(result.ttl) },
          );
        }
      });
    }
    if (opensStream && limits.streamChannelsPerUser > 0) {
      applied.push("stream_channels");
      // A stream of n channels spends n: each channel an open names can cost Redis a room.
      addHook(route, "preValidation", async (request: FastifyRequest) => {
        if (streamChannels === null) return;
        const check = streamChannels;
        const n = channelCount(request.query, config.limits.maxChannelsPerStream);
        const results = await Promise.all(Array.from({ length: n }, () => check(request)));
        const over = results.find((r) => !r.isAllowed && r.isExceeded);
        if (over) {
          countRefusal(route, "stream_channels");
          throw appError(
            Errors.RATE_LIMITED,
            `This user's streams named too many channels; retry in ${retryAfter(over.ttl)} s`,
            { "Retry-After": retryAfter(over.ttl) },
          );
        }
      });
    }
    const budget = spec?.channelBudget;
    if (budget && limits.perChannel > 0) {
      applied.push("channel");
      const { channel, spentBy: publisher } = budget;
      addHook(route, "preHandler", async (request: FastifyRequest) => {
        const name = channel(request.body);
        if (name === null || channelBudget === null) return;
        let identity: Awaited<ReturnType<Auth["authenticate"]>>;
        try {
          identity = await auth.authenticate(request);
        } catch {
          return; // the route answers 401
        }
        if (!(await publisher(identity, name))) return; // the route answers 403
        channelOfRequest.set(request, name);
        const result = await channelBudget(request);
        if (!result.isAllowed && result.isExceeded) {
          metrics.rateLimited("channel");
          throw appError(
            Errors.RATE_LIMITED,
            `${name} is over its broadcast budget; retry in ${retryAfter(result.ttl)} s`,
            { "Retry-After": retryAfter(result.ttl) },
          );
        }
      });
    }
  });

  await app.register(rateLimit, {
    global: false,
    ...(redis && { redis, nameSpace: `${config.redis.prefix}:rl:` }),
    cache: CACHE_ENTRIES,
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      appError(Errors.RATE_LIMITED, `Too many requests; retry in ${retryAfter(context.ttl)} s`, {
        "Retry-After": retryAfter(context.ttl),
      }),
  });

  if (limits.perChannel > 0) {
    const check = app.createRateLimit({
      max: limits.perChannel,
      timeWindow: limits.windowMs,
      keyGenerator: (request) => `budget:${channelOfRequest.get(request) ?? ""}`,
    });
    channelBudget = check as (request: FastifyRequest) => Promise<BudgetResult>;
  }
  if (limits.streamChannelsPerUser > 0) {
    const check = app.createRateLimit({
      max: limits.streamChannelsPerUser,
      timeWindow: limits.windowMs,
      keyGenerator: async (request) => `stream-channels-${await identityKey(request)}`,
    });
    streamChannels = check as (request: FastifyRequest) => Promise<BudgetResult>;
  }
  if (limits.streamsPerIp > 0) {
    const check = app.createRateLimit({
      max: limits.streamsPerIp,
      timeWindow: limits.windowMs,
      keyGenerator: (request) => `streams-${ipKey(request)}`,
    });
    streamsPerIp = check as (request: FastifyRequest) => Promise<BudgetResult>;
  }
  return { routes };
}

interface BudgetResult {
  readonly isAllowed: boolean;
  readonly isExceeded?: boolean;
  readonly ttl: number;
}

/** How many channels a stream request names (at most `max`: more are refused by the route). */
function channelCount(query: unknown, max: number): number {
  const raw = (query as { channel?: unknown } | undefined)?.channel;
  const n = Array.isArray(raw) ? raw.length : typeof raw === "string" ? 1 : 0;
  return Math.min(n, max);
}
