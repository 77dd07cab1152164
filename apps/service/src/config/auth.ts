/** `config.auth`: how tokens are signed and checked, dev login, and the session cookie. */
import { randomBytes } from "node:crypto";
import { type EnvReader, show } from "./env.ts";

/** Shortest accepted `JWT_SECRET`, in characters (HS256 wants at least 256 bits of key). */
export const MIN_JWT_SECRET_LENGTH = 32;

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

/**
 * Reads `config.auth`. Its defaults depend on `NODE_ENV` (`isProduction`) and whether the
 * server speaks TLS itself (`tls`), which the caller has read already.
 */
export function readAuth(
  r: EnvReader,
  { isProduction, tls }: { readonly isProduction: boolean; readonly tls: boolean },
): AuthConfig {
  return {
    ...readSecret(r, isProduction),
    issuer: r.string("JWT_ISSUER", "realtime"),
    audience: r.string("JWT_AUDIENCE", "realtime"),
    tokenTtlSeconds: r.int("TOKEN_TTL_SECONDS", 86400),
    devLogin: r.bool("AUTH_DEV_LOGIN", !isProduction),
    cookieName: readCookieName(r),
    cookieSecure: tls || isProduction,
  };
}

function readSecret(r: EnvReader, isProduction: boolean) {
  const secret = r.raw("JWT_SECRET");
  if (secret === undefined) {
    if (isProduction) {
      r.problems.push(
        `JWT_SECRET is required in production (at least ${MIN_JWT_SECRET_LENGTH} characters)`,
      );
    }
    // A fresh key per process: dev tokens never outlive the process, and there is no
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

/** RFC 6265 cookie-name token characters, so the name never needs quoting. */
const COOKIE_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

function readCookieName(r: EnvReader): string {
  const name = r.string("COOKIE_NAME", "rt_session");
  if (!COOKIE_NAME_PATTERN.test(name)) {
    r.problems.push(`COOKIE_NAME must be a cookie token ([A-Za-z0-9_-] etc.), got ${show(name)}`);
  }
  return name;
}
