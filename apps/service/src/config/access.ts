/** `config.access`: who may subscribe to and publish on which channels (docs/security.md). */
import { type EnvReader, show } from "./env.ts";

export const CHANNEL_ACCESS_DEFAULTS = ["open", "closed"] as const;
export type ChannelDefaultAccess = (typeof CHANNEL_ACCESS_DEFAULTS)[number];

export interface AccessConfig {
  /**
   * What a user may do on a channel no rule covers (`CHANNEL_DEFAULT_ACCESS`): `open` lets every
   * signed-in user subscribe to and post in every `channel:<id>` room (development, and the
   * default, as before rules existed); `closed` refuses them. Production should use `closed`
   * with the token's `realtime` claim or `AUTHZ_URL`. `user:<id>` is its owner's alone either way.
   */
  readonly defaultAccess: ChannelDefaultAccess;
  /**
   * The product's backend that decides what a token does not say (`AUTHZ_URL`): the pod POSTs
   * `{ userId, channel, action }`; 2xx allows, 403 denies, 404 means "no rule" (the default
   * applies), anything else or no answer in time denies. Null: no backend.
   */
  readonly authzUrl: string | null;
  /** How long a backend decision is kept per user, channel and action, in ms (`AUTHZ_CACHE_MS`). Default 30000. */
  readonly authzCacheMs: number;
  /** Longest wait for the backend's answer, in ms (`AUTHZ_TIMEOUT_MS`); then it denies. Default 2000. */
  readonly authzTimeoutMs: number;
  /** Backend requests in flight at once per pod (`AUTHZ_MAX_CONCURRENCY`); more wait their turn. Default 32. */
  readonly authzMaxConcurrency: number;
}

export function readAccess(r: EnvReader): AccessConfig {
  return {
    defaultAccess: r.oneOf("CHANNEL_DEFAULT_ACCESS", CHANNEL_ACCESS_DEFAULTS, "open"),
    authzUrl: readAuthzUrl(r),
    authzCacheMs: r.int("AUTHZ_CACHE_MS", 30_000, 1_000, 3_600_000),
    authzTimeoutMs: r.int("AUTHZ_TIMEOUT_MS", 2_000, 50, 60_000),
    authzMaxConcurrency: r.int("AUTHZ_MAX_CONCURRENCY", 32, 1, 1_024),
  };
}

function readAuthzUrl(r: EnvReader): string | null {
  const raw = r.raw("AUTHZ_URL");
  if (raw === undefined || raw === "") return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    r.problems.push(`AUTHZ_URL must be an http(s) URL, got ${show(raw)}`);
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    r.problems.push(`AUTHZ_URL must be an http(s) URL, got ${show(raw)}`);
    return null;
  }
  if (url.username || url.password) {
    // A credential in the URL ends up in logs and error messages.
    r.problems.push("AUTHZ_URL must not carry credentials");
    return null;
  }
  return url.href;
}
