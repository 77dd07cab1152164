/** `config.auth`: how tokens are signed and checked, dev login, and the session cookie. */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { type EnvReader, show } from "./env.ts";

/** Shortest accepted `JWT_SECRET`, in characters (HS256 wants at least 256 bits of key). */
export const MIN_JWT_SECRET_LENGTH = 32;

/** `alg` values checked with the shared secret `JWT_SECRET`, and only with it. */
export const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;

/** `alg` values checked with a key from the JWKS (`JWT_JWKS_URL`), and only with one. */
export const JWKS_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

export type HmacAlgorithm = (typeof HMAC_ALGORITHMS)[number];
export type JwksAlgorithm = (typeof JWKS_ALGORITHMS)[number];
/** A JWS algorithm `JWT_ALGORITHMS` may name. `none` is not one, nor anything unknown. */
export type JwtAlgorithm = HmacAlgorithm | JwksAlgorithm;

/** The algorithm of the tokens this service issues (dev login, `npm run token`). */
export const ISSUED_ALGORITHM: HmacAlgorithm = "HS256";

/** `JWT_ALGORITHMS` when unset: HS256, plus RS256, ES256 and EdDSA when a JWKS is configured. */
export function defaultAlgorithms(jwks: boolean): readonly JwtAlgorithm[] {
  return jwks ? [ISSUED_ALGORITHM, "RS256", "ES256", "EdDSA"] : [ISSUED_ALGORITHM];
}

/** How long one JWKS fetch may take before it counts as failed, in ms (jose's default). */
export const JWKS_TIMEOUT_MS = 5000;

/** The identity provider's key set (`JWT_JWKS_URL`), fetched and cached by jose. */
export interface JwksConfig {
  /** `JWT_JWKS_URL`: http(s); https in production unless the host is loopback. */
  readonly url: string;
  /**
   * `JWT_JWKS_CACHE_MS`: how long a fetched set is used before the next verification fetches
   * it again (a key removed from the set stops verifying within this). Default 600000 (10 min).
   */
  readonly cacheMaxAgeMs: number;
  /**
   * `JWT_JWKS_COOLDOWN_MS`: after a fetch, how long a token with an unknown `kid` is refused
   * without fetching again (bounds the fetches forged `kid`s can cause; also the back-off after
   * a failed fetch). A rotated-in key is picked up at most this long after the last fetch.
   * Default 30000.
   */
  readonly cooldownMs: number;
  /** Per fetch, in ms: {@link JWKS_TIMEOUT_MS}. */
  readonly timeoutMs: number;
}

export interface AuthConfig {
  /**
   * HS256 signing key (`JWT_SECRET`), at least 32 characters. Required in production unless
   * `JWT_JWKS_URL` is set; otherwise a random per-process key is generated (tokens it signs
   * die with the process).
   */
  readonly secret: string;
  /** True when {@link secret} was generated because `JWT_SECRET` was unset. */
  readonly secretGenerated: boolean;
  /**
   * `alg` values accepted (`JWT_ALGORITHMS`, comma-separated): HS* are checked only with
   * {@link secret}, the others only with a key from {@link jwks}. Default
   * {@link defaultAlgorithms}.
   */
  readonly algorithms: readonly JwtAlgorithm[];
  /** The identity provider's key set, or null when `JWT_JWKS_URL` is unset. */
  readonly jwks: JwksConfig | null;
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

/**
 * Reads `config.auth`. Its defaults depend on `NODE_ENV` (`isProduction`) and whether the
 * server speaks TLS itself (`tls`), which the caller has read already.
 */
export function readAuth(
  r: EnvReader,
  { isProduction, tls }: { readonly isProduction: boolean; readonly tls: boolean },
): AuthConfig {
  const jwks = readJwks(r, isProduction);
  const { secret, secretGenerated } = readSecret(r, isProduction, jwks !== null);
  const devLogin = r.bool("AUTH_DEV_LOGIN", !isProduction);
  const algorithms = readAlgorithms(r, jwks !== null);
  const hmac = algorithms.filter(isHmacAlgorithm);
  if (isProduction && secretGenerated && jwks !== null) {
    // Only the JWKS verifies here. A generated key differs per pod and per restart, so tokens
    // the service signs itself could not be relied on anywhere else.
    if (devLogin) {
      r.problems.push("AUTH_DEV_LOGIN=true needs JWT_SECRET in production (the same on every pod)");
    }
    if (r.raw("JWT_ALGORITHMS") !== undefined && hmac.length > 0) {
      r.problems.push(`JWT_ALGORITHMS lists ${hmac.join(", ")} but JWT_SECRET is not set`);
    }
  }
  if (devLogin && !algorithms.includes(ISSUED_ALGORITHM)) {
    r.problems.push(
      `JWT_ALGORITHMS must include ${ISSUED_ALGORITHM} while AUTH_DEV_LOGIN is on (its tokens are ${ISSUED_ALGORITHM})`,
    );
  }
  return {
    secret,
    secretGenerated,
    algorithms,
    jwks,
    issuer: r.string("JWT_ISSUER", "realtime"),
    audience: r.string("JWT_AUDIENCE", "realtime"),
    tokenTtlSeconds: r.int("TOKEN_TTL_SECONDS", 86400),
    devLogin,
    cookieName: readCookieName(r),
    cookieSecure: tls || isProduction,
  };
}

function readSecret(r: EnvReader, isProduction: boolean, jwks: boolean) {
  const secret = r.raw("JWT_SECRET");
  if (secret === undefined) {
    if (isProduction && !jwks) {
      r.problems.push(
        `JWT_SECRET is required in production (at least ${MIN_JWT_SECRET_LENGTH} characters) unless JWT_JWKS_URL is set`,
      );
    }
    // A fresh key per process: tokens it signs never outlive the process, and there is no
    // well-known default key that could leak into a deployment.
    return { secret: randomBytes(32).toString("base64url"), secretGenerated: true };
  }
  if (secret.length < MIN_JWT_SECRET_LENGTH) {
    // Never echo the secret, not even partly.
    r.problems.push(
      `JWT_SECRET must be at least ${MIN_JWT_SECRET_LENGTH} characters, got ${secret.length}`,
    );
  }
  return { secret, secretGenerated: false };
}

export function isHmacAlgorithm(alg: string): alg is HmacAlgorithm {
  return (HMAC_ALGORITHMS as readonly string[]).includes(alg);
}

export function isJwksAlgorithm(alg: string): alg is JwksAlgorithm {
  return (JWKS_ALGORITHMS as readonly string[]).includes(alg);
}

function readAlgorithms(r: EnvReader, jwks: boolean): readonly JwtAlgorithm[] {
  const value = r.raw("JWT_ALGORITHMS");
  if (value === undefined) return defaultAlgorithms(jwks);
  const algorithms: JwtAlgorithm[] = [];
  let valid = true;
  for (const name of value.split(",").map((n) => n.trim())) {
    if (isHmacAlgorithm(name) || isJwksAlgorithm(name)) {
      if (!algorithms.includes(name)) algorithms.push(name);
    } else {
      // `none` lands here too: an unsigned token is never accepted.
      valid = false;
      const known = [...HMAC_ALGORITHMS, ...JWKS_ALGORITHMS].join(", ");
      r.problems.push(`JWT_ALGORITHMS: ${show(name)} is not one of ${known}`);
    }
  }
  if (!valid) return defaultAlgorithms(jwks);
  const asymmetric = algorithms.filter(isJwksAlgorithm);
  if (!jwks && asymmetric.length > 0) {
    r.problems.push(`JWT_ALGORITHMS lists ${asymmetric.join(", ")}, which need JWT_JWKS_URL`);
  }
  if (jwks && asymmetric.length === 0) {
    r.problems.push("JWT_JWKS_URL is set but JWT_ALGORITHMS allows no algorithm it verifies");
  }
  return algorithms;
}

function readJwks(r: EnvReader, isProduction: boolean): JwksConfig | null {
  // Read (and validated) even without a URL, so a typo is reported whatever else is set.
  const cacheMaxAgeMs = r.int("JWT_JWKS_CACHE_MS", 600_000, 1000, 86_400_000);
  const cooldownMs = r.int("JWT_JWKS_COOLDOWN_MS", 30_000, 1000, 3_600_000);
  const value = r.raw("JWT_JWKS_URL");
  if (value === undefined) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    r.problems.push(`JWT_JWKS_URL must be an http(s) URL, got ${show(value)}`);
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    r.problems.push(`JWT_JWKS_URL must be an http(s) URL, got ${show(value)}`);
    return null;
  }
  if (url.username !== "" || url.password !== "") {
    // fetch refuses them, and a password in a URL ends up in logs: never echo it.
    r.problems.push("JWT_JWKS_URL must not contain credentials (user:password@)");
    return null;
  }
  if (isProduction && url.protocol === "http:" && !isLoopback(url.hostname)) {
    // Whoever can change the keys in transit can sign any identity.
    r.problems.push(
      `JWT_JWKS_URL must be https in production (http only for a loopback host), got ${show(value)}`,
    );
  }
  return { url: url.href, cacheMaxAgeMs, cooldownMs, timeoutMs: JWKS_TIMEOUT_MS };
}

/** `localhost`, 127.0.0.0/8 or ::1: a JWKS served by a sidecar on the same host. */
function isLoopback(hostname: string): boolean {
  const host = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** RFC 6265 cookie-name token characters, so the name never needs quoting. */
const COOKIE_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

function readCookieName(r: EnvReader): string {
  const name = r.string("COOKIE_NAME", "rt_session");
  if (!COOKIE_NAME_PATTERN.test(name)) {
    r.problems.push(`COOKIE_NAME must be a cookie token ([A-Za-z0-9_-] etc.), got ${show(name)}`);
  }
  return name;
}
