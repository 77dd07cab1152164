/**
 * The security settings of the service (`config.security`): rate limits, per-user and per-IP
 * connection caps, and the CORS origin allow-list. Read by `loadConfig` like every other
 * section; see docs/security.md for what each one defends against.
 */
import { type EnvReader, show } from "./env.ts";

/**
 * Requests allowed per {@link windowMs}, per key. 0 turns that limit off. Counted in Redis in
 * Redis mode (one budget for all pods), in memory in embedded mode.
 */
export interface RateLimitConfig {
  /** Length of the fixed window every limit counts in, in ms (`RATE_LIMIT_WINDOW_MS`). Default 10000. */
  readonly windowMs: number;
  /** `POST /api/chat/messages` per user (`RATE_LIMIT_CHAT_MAX`). Default 50. */
  readonly chatPerUser: number;
  /** `POST /api/generate/video` per user (`RATE_LIMIT_JOBS_MAX`). Default 20. */
  readonly jobsPerUser: number;
  /** `POST /api/publish` per service token (`RATE_LIMIT_PUBLISH_MAX`). Default 100000. */
  readonly publishPerService: number;
  /** `POST /api/auth/dev-login` per client IP (`RATE_LIMIT_LOGIN_MAX`). Default 100. */
  readonly loginPerIp: number;
  /**
   * `GET /api/events` opens per user (`RATE_LIMIT_STREAMS_MAX`), refused or not. The stream cap
   * bounds how many are open at once; this bounds how fast they are opened (each open joins
   * presence in every room it names). A healthy client reconnects every few seconds at most,
   * and a deploy makes each tab reconnect once. Default 30.
   */
  readonly streamsPerUser: number;
  /**
   * `GET /api/events` opens per client IP (`RATE_LIMIT_STREAMS_PER_IP_MAX`). Default 0 (off):
   * behind a proxy without `TRUST_PROXY` every client has the proxy's address, and a deploy's
   * reconnect storm from one NAT must not be throttled by default.
   */
  readonly streamsPerIp: number;
  /**
   * Channels named by one user's `GET /api/events` opens (`RATE_LIMIT_STREAM_CHANNELS_MAX`): a
   * stream of n channels spends n. What a room costs the shared Redis comes with each channel
   * an open names (its position and, with the presence event, a history stream of ~4.7 KB), so
   * this, not the number of opens, bounds what one user can make Redis hold. Default 120 (30
   * opens of 4 channels).
   */
  readonly streamChannelsPerUser: number;
  /** `GET /api/channels/:channel/presence` per user (`RATE_LIMIT_PRESENCE_MAX`). Default 60. */
  readonly presencePerUser: number;
  /** `GET /api/channels/:channel/messages` per user (`RATE_LIMIT_HISTORY_MAX`). Default 60. */
  readonly historyPerUser: number;
  /**
   * Events accepted per channel over chat and the publish API together
   * (`CHANNEL_PUBLISH_MAX`): the broadcast budget that keeps one room from flooding every
   * pod. Default 20000 (2000/s with the default window).
   */
  readonly perChannel: number;
}

export interface ConnectionLimitsConfig {
  /**
   * Open SSE streams per user (`MAX_CONNECTIONS_PER_USER`), counted over every pod in Redis
   * mode. Default 64; 0 = no limit.
   */
  readonly perUser: number;
  /**
   * Open SSE streams per client IP on one pod (`MAX_CONNECTIONS_PER_IP`). Default 0 (off):
   * behind a proxy every client shares the proxy's address unless `TRUST_PROXY` is set, and
   * many users share one NAT address.
   */
  readonly perIp: number;
  /**
   * Redis mode: how long a pod's count of a user's streams stays valid without a refresh, in
   * ms (`CONNECTION_LEASE_TTL_MS`); pods refresh every third of it. A pod that dies stops
   * counting after at most this long. Default 30000.
   */
  readonly leaseTtlMs: number;
}

export interface SecurityConfig {
  readonly rateLimit: RateLimitConfig;
  readonly connections: ConnectionLimitsConfig;
  /**
   * Origins (`scheme://host[:port]`) that may call the API from a browser with credentials
   * (`CORS_ORIGINS`, comma-separated). Default none: same-origin only. `*` and `null` are
   * refused.
   */
  readonly corsOrigins: readonly string[];
}

export function readSecurityConfig(r: EnvReader): SecurityConfig {
  const rateLimit: RateLimitConfig = {
    windowMs: r.int("RATE_LIMIT_WINDOW_MS", 10_000, 100, 3_600_000),
    chatPerUser: r.int("RATE_LIMIT_CHAT_MAX", 50, 0),
    jobsPerUser: r.int("RATE_LIMIT_JOBS_MAX", 20, 0),
    publishPerService: r.int("RATE_LIMIT_PUBLISH_MAX", 100_000, 0),
    loginPerIp: r.int("RATE_LIMIT_LOGIN_MAX", 100, 0),
    streamsPerUser: r.int("RATE_LIMIT_STREAMS_MAX", 30, 0),
    streamsPerIp: r.int("RATE_LIMIT_STREAMS_PER_IP_MAX", 0, 0),
    streamChannelsPerUser: r.int("RATE_LIMIT_STREAM_CHANNELS_MAX", 120, 0),
    presencePerUser: r.int("RATE_LIMIT_PRESENCE_MAX", 60, 0),
    historyPerUser: r.int("RATE_LIMIT_HISTORY_MAX", 60, 0),
    perChannel: r.int("CHANNEL_PUBLISH_MAX", 20_000, 0),
  };
  const connections: ConnectionLimitsConfig = {
    perUser: r.int("MAX_CONNECTIONS_PER_USER", 64, 0),
    perIp: r.int("MAX_CONNECTIONS_PER_IP", 0, 0),
    leaseTtlMs: r.int("CONNECTION_LEASE_TTL_MS", 30_000, 300, 3_600_000),
  };
  return { rateLimit, connections, corsOrigins: readOrigins(r) };
}

/**
 * `CORS_ORIGINS`: exact origins only. A wildcard or `null` would let any site (or any sandboxed
 * iframe) read responses with the user's cookie.
 */
function readOrigins(r: EnvReader): string[] {
  const value = r.raw("CORS_ORIGINS");
  if (value === undefined) return [];
  const origins: string[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    if (item.length === 0) continue;
    const origin = canonicalOrigin(item);
    if (origin === null) {
      r.problems.push(
        `CORS_ORIGINS must list exact origins like https://app.example.com (no *, null, paths), got ${show(item)}`,
      );
      continue;
    }
    if (!origins.includes(origin)) origins.push(origin);
  }
  return origins;
}

/** The origin `value` names, as browsers serialise it, or null when it is not exactly one. */
function canonicalOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username || url.password || url.search || url.hash) return null;
  if (url.pathname !== "/" || value.endsWith("/")) return null;
  if (url.hostname.includes("*")) return null;
  return url.origin;
}
