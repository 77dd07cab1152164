/**
 * Service configuration, read once from environment variables at start-up.
 *
 * Every value is validated so that a typo fails the deploy with a message naming the variable,
 * instead of surfacing later as odd behaviour (an unset limit, a dev login left on in
 * production). All problems are reported together so one restart shows everything to fix.
 *
 * This file composes the sections: each one's shape, defaults and reader live in a file of its
 * own under `config/` (`config/http.ts`, `config/redis.ts`, `config/security.ts`, …), which
 * reads its variables with the section-agnostic `config/env.ts`. Nothing under `config/`
 * imports this file.
 */
import { type AccessConfig, readAccess } from "./config/access.ts";
import type { AuthConfig } from "./config/auth.ts";
import { readAuth } from "./config/auth.ts";
import { type ChannelStateConfig, readChannels } from "./config/channels.ts";
import { deepFreeze, type Env, EnvReader } from "./config/env.ts";
import { type HttpConfig, readHttp } from "./config/http.ts";
import { type JobsConfig, readJobs } from "./config/jobs.ts";
import { type LimitsConfig, readLimits } from "./config/limits.ts";
import { type PresenceConfig, readPresence } from "./config/presence.ts";
import { type PublishConfig, readPublish } from "./config/publish.ts";
import { type RedisConfig, readRedis } from "./config/redis.ts";
import { readSecurityConfig, type SecurityConfig } from "./config/security.ts";
import { readShutdown, type ShutdownConfig } from "./config/shutdown.ts";
import { readSse, type SseConfig } from "./config/sse.ts";

export type { AccessConfig } from "./config/access.ts";
export type { AuthConfig } from "./config/auth.ts";
export { MIN_JWT_SECRET_LENGTH } from "./config/auth.ts";
export type { ChannelStateConfig } from "./config/channels.ts";
export type { Env } from "./config/env.ts";
export type { HttpConfig } from "./config/http.ts";
export { defaultJobConcurrency, type JobsConfig } from "./config/jobs.ts";
export type { LimitsConfig } from "./config/limits.ts";
export type { PresenceConfig } from "./config/presence.ts";
export type { PublishConfig } from "./config/publish.ts";
export type { RedisConfig, RedisNode } from "./config/redis.ts";
export type {
  ConnectionLimitsConfig,
  RateLimitConfig,
  SecurityConfig,
} from "./config/security.ts";
export type { ShutdownConfig } from "./config/shutdown.ts";
export type { SseConfig } from "./config/sse.ts";

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

export interface Config {
  /** `NODE_ENV`. Default `"development"`. */
  readonly nodeEnv: NodeEnv;
  /** Derived: `nodeEnv === "production"`. */
  readonly isProduction: boolean;
  /** pino level (`LOG_LEVEL`). Default `"info"`. */
  readonly logLevel: LogLevel;
  readonly http: HttpConfig;
  readonly auth: AuthConfig;
  /** Channel access rules: the default, and the product's backend (docs/security.md). */
  readonly access: AccessConfig;
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
 * Builds the {@link Config} from environment variables (see each section's file for its
 * variables and defaults). Throws {@link ConfigError} listing every invalid variable.
 */
export function loadConfig(env: Env = process.env): Config {
  const r = new EnvReader(env);

  const nodeEnv = r.oneOf("NODE_ENV", NODE_ENVS, "development");
  const isProduction = nodeEnv === "production";
  const logLevel = r.oneOf("LOG_LEVEL", LOG_LEVELS, "info");
  // In this order, so the problems are listed in it.
  const http = readHttp(r, { isProduction });
  const auth = readAuth(r, { isProduction, tls: http.tls !== null });
  const access = readAccess(r);
  const redis = readRedis(r);
  const limits = readLimits(r);
  const channels = readChannels(r);
  const sse = readSse(r);
  const publish = readPublish(r);
  const shutdown = readShutdown(r);
  const presence = readPresence(r);
  const jobs = readJobs(r);
  const security = readSecurityConfig(r);

  if (r.problems.length > 0) throw new ConfigError(r.problems);

  return deepFreeze({
    nodeEnv,
    isProduction,
    logLevel,
    http,
    auth,
    access,
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
