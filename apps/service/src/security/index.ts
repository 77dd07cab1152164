/**
 * The service's defences against abuse and hostile input, registered in one place before the
 * routes (see docs/security.md for the threat model and each defence's setting and test).
 */
import type { FastifyInstance } from "fastify";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";
import { registerBrowserSecurity } from "./browser.ts";
import { ConnectionLimits, connectionLedger } from "./connection-limits.ts";
import { registerHttpHardening } from "./http.ts";
import { type RateLimits, registerRateLimits } from "./rate-limit.ts";
import { closeLimitsRedis, createLimitsRedis } from "./redis.ts";
import { registerStreamAdmission } from "./streams.ts";

export { memoizeAuthentication } from "./auth-memo.ts";
export { registerSecurityHeaders } from "./browser.ts";
export { TOKEN_EXPIRY_MARGIN_MS } from "./streams.ts";

export interface SecurityDeps {
  readonly config: Config;
  /** The service's auth, wrapped in {@link memoizeAuthentication}. */
  readonly auth: Auth;
  readonly metrics: PrometheusMetrics;
}

export interface Security {
  readonly connectionLimits: ConnectionLimits;
  /** Every route added after the defences (`"METHOD url"`), with the rate limits it got. */
  readonly rateLimitedRoutes: RateLimits["routes"];
  /** Stops timers and closes the Redis client; call after the server closed. */
  close(): Promise<void>;
}

/**
 * Registers every defence on `app`. Call after `@fastify/cookie` (the CSRF check reads the
 * session cookie) and before the routes (limits attach to them as they are added).
 */
export async function registerSecurity(
  app: FastifyInstance,
  deps: SecurityDeps,
): Promise<Security> {
  const { config, auth, metrics } = deps;
  const log = app.log.child({ component: "security" });
  const redis = await createLimitsRedis(config.redis, { warn: (m) => log.warn(m) });
  const connectionLimits = new ConnectionLimits({
    perIp: config.security.connections.perIp,
    ledger: connectionLedger(config.security.connections, redis, {
      prefix: config.redis.prefix,
      log: { warn: (m) => log.warn(m) },
    }),
  });
  registerHttpHardening(app, config.http);
  await registerBrowserSecurity(app, config);
  const rateLimits = await registerRateLimits(app, { config, auth, metrics, redis });
  registerStreamAdmission(app, { auth, limits: connectionLimits, metrics });
  return {
    connectionLimits,
    rateLimitedRoutes: rateLimits.routes,
    async close() {
      connectionLimits.close();
      await closeLimitsRedis(redis);
    },
  };
}
