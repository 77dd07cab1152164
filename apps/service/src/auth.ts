/**
 * Identity from JWTs: issuing them (HS256, the shared secret), verifying them (HS* with the
 * secret, RS/PS/ES/EdDSA with an identity provider's JWKS: `auth/keys.ts`), finding them on a
 * request. The dev-login routes that hand them out are in routes/auth.ts.
 *
 * Identity comes only from a verified token, taken from `Authorization: Bearer` (services,
 * tests) or the HttpOnly session cookie (browsers). Never from a query parameter: URLs end up
 * in logs, proxies and browser history, and a token there could be replayed by anyone who
 * reads them.
 */
import { getRandomValues } from "node:crypto";
import { validateChannelId } from "@realtime/protocol";
import { appError, Errors } from "@realtime/server";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { type ChannelGrant, GRANT_CLAIM, parseGrant } from "./auth/grant.ts";
import type { Identity } from "./auth/identity.ts";
import { type KeyEvents, TokenKeys } from "./auth/keys.ts";
import { ISSUED_ALGORITHM } from "./config/auth.ts";
import type { AuthConfig } from "./config.ts";

export type { Identity } from "./auth/identity.ts";
export type { KeyEvents as AuthEvents } from "./auth/keys.ts";

/**
 * The part of {@link AuthConfig} that {@link createAuth} uses; pass `config.auth`. Without
 * `algorithms` and `jwks`, only HS256 tokens signed with `secret` verify.
 */
export type AuthOptions = Pick<
  AuthConfig,
  "secret" | "issuer" | "audience" | "tokenTtlSeconds" | "cookieName"
> &
  Partial<Pick<AuthConfig, "algorithms" | "jwks">>;

/** The request fields a token may come from. */
export interface TokenSource {
  readonly headers: { readonly authorization?: string | undefined };
  /** Set by `@fastify/cookie`. */
  readonly cookies?: { readonly [name: string]: string | undefined };
}

export interface Auth {
  /**
   * A token for a user: `sub` = id, `name`, `iss`, `aud`, `iat`, `exp` = now + TTL, and the
   * `realtime` claim when `grant` is given (its whole channel access, grant.ts).
   */
  issueUserToken(user: {
    readonly id: string;
    readonly name: string;
    readonly grant?: ChannelGrant;
  }): Promise<string>;
  /**
   * A token for a backend service: `sub` = `svc:<service>`, `scope` = the scopes joined by
   * spaces (e.g. `"publish"`). `ttlSeconds` defaults to the configured token TTL.
   */
  issueServiceToken(service: {
    readonly service: string;
    readonly scopes: readonly string[];
    readonly ttlSeconds?: number;
    readonly grant?: ChannelGrant;
  }): Promise<string>;
  /**
   * Verifies a token and returns who it names. Throws an {@link AppError} with
   * `RT_ERR_TOKEN_EXPIRED` for a genuine but expired token and `RT_ERR_UNAUTHORIZED` for
   * anything else; the message never contains the token.
   */
  verify(token: string): Promise<Identity>;
  /**
   * The identity behind a request's token ({@link credentialsOf}); throws a 401
   * {@link AppError} when there is none or the `Authorization` header is malformed.
   */
  authenticate(request: TokenSource): Promise<Identity>;
}

/** Longest token we try to verify, in characters; bounds the work a hostile header can cause. */
export const MAX_TOKEN_LENGTH = 8192;

/**
 * Tokens remembered after a successful verification. A browser reconnecting, a tab opening a
 * second stream and a backend publishing in a loop all present the same token again; checking
 * its HMAC once is enough (its bytes are what was verified, and only the clock can change the
 * answer: `exp` is checked on every use). Bounded: the oldest entry leaves first.
 */
const VERIFIED_CACHE_SIZE = 10_000;
const SERVICE_PREFIX = "svc:";
const SERVICE_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const SCOPE_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

class JwtAuth implements Auth {
  /**
   * The secret's HMAC keys (imported into WebCrypto once: handing jose the raw bytes would
   * import them again on every sign and verify, a third of the cost of a publish) and the
   * identity provider's JWKS; which one checks a token is theirs to say.
   */
  readonly #keys: TokenKeys;
  readonly #options: AuthOptions;
  readonly #now: () => number;
  /** Token → who it names, for tokens that passed every check (see VERIFIED_CACHE_SIZE). */
  readonly #verified = new Map<string, Identity>();

  constructor(options: AuthOptions, now: () => number, events: KeyEvents) {
    this.#keys = new TokenKeys(options, events);
    // Imported now, so the first token issued or checked does not wait for it.
    void this.#keys.hmacKey(ISSUED_ALGORITHM);
    this.#options = options;
    this.#now = now;
  }

  async issueUserToken(user: {
    readonly id: string;
    readonly name: string;
    readonly grant?: ChannelGrant;
  }): Promise<string> {
    const problem = validateChannelId(user.id);
    // The id becomes the user's channel `user:<id>`, so it must be a valid channel id.
    if (problem) throw new TypeError(`invalid user id: ${problem}`);
    const claims = { name: user.name, ...grantClaim(user.grant) };
    return this.#sign(claims, user.id, this.#options.tokenTtlSeconds);
  }

  async issueServiceToken(service: {
    readonly service: string;
    readonly scopes: readonly string[];
    readonly ttlSeconds?: number;
    readonly grant?: ChannelGrant;
  }): Promise<string> {
    if (!SERVICE_NAME_PATTERN.test(service.service)) {
      throw new TypeError(`invalid service name; must match ${SERVICE_NAME_PATTERN.source}`);
    }
    for (const scope of service.scopes) {
      if (!SCOPE_PATTERN.test(scope)) {
        throw new TypeError(`invalid scope; each must match ${SCOPE_PATTERN.source}`);
      }
    }
    const ttl = service.ttlSeconds ?? this.#options.tokenTtlSeconds;
    const claims = { scope: service.scopes.join(" "), ...grantClaim(service.grant) };
    return this.#sign(claims, SERVICE_PREFIX + service.service, ttl);
  }

  async verify(token: string): Promise<Identity> {
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
      throw appError(Errors.UNAUTHORIZED, "Invalid token");
    }
    const known = this.#verified.get(token);
    if (known !== undefined) {
      // jose's rule, to the second: expired once `exp <= now`.
      if (Math.floor(this.#now() / 1000) * 1000 < known.expiresAt) return known;
      this.#verified.delete(token);
      throw appError(Errors.TOKEN_EXPIRED);
    }
    let payload: Record<string, unknown>;
    try {
      // Pinned: the token's own header never chooses how it is checked beyond its family (no
      // alg: none, no HS/RS confusion, nothing JWT_ALGORITHMS leaves out): see auth/keys.ts.
      const { key, algorithms } = await this.#keys.forToken(token);
      ({ payload } = await jwtVerify(token, key, {
        algorithms,
        issuer: this.#options.issuer,
        audience: this.#options.audience,
        requiredClaims: ["exp", "sub"],
        currentDate: new Date(this.#now()),
      }));
    } catch (err) {
      // jose checks the signature before the claims, so "expired" means it was genuine. Any
      // other failure (forged, unknown key, JWKS unreachable) is a 401 that says nothing more.
      if (err instanceof joseErrors.JWTExpired) throw appError(Errors.TOKEN_EXPIRED);
      throw appError(Errors.UNAUTHORIZED, "Invalid token");
    }
    const identity = toIdentity(payload);
    if (!identity) throw appError(Errors.UNAUTHORIZED, "Invalid token");
    if (this.#verified.size >= VERIFIED_CACHE_SIZE) {
      this.#verified.delete(this.#verified.keys().next().value as string);
    }
    this.#verified.set(token, identity);
    return identity;
  }

  async authenticate(request: TokenSource): Promise<Identity> {
    const credentials = credentialsOf(request, this.#options.cookieName);
    if (credentials.kind === "malformed") {
      throw appError(Errors.UNAUTHORIZED, "The Authorization header must be `Bearer <token>`");
    }
    if (credentials.kind === "none") throw appError(Errors.UNAUTHORIZED);
    return this.verify(credentials.token);
  }

  async #sign(
    claims: Record<string, unknown>,
    subject: string,
    ttlSeconds: number,
  ): Promise<string> {
    const now = Math.floor(this.#now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: ISSUED_ALGORITHM, typ: "JWT" })
      .setSubject(subject)
      .setIssuer(this.#options.issuer)
      .setAudience(this.#options.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .sign(await this.#keys.hmacKey(ISSUED_ALGORITHM));
  }
}

/** The `realtime` claim for `grant`, checked as a verifier would (so we never issue a token we refuse). */
function grantClaim(grant: ChannelGrant | undefined): Record<string, ChannelGrant> {
  if (grant === undefined) return {};
  if (!parseGrant(grant)) throw new TypeError("invalid grant: see auth/grant.ts for its shape");
  return { [GRANT_CLAIM]: grant };
}

/** Maps verified claims to an identity, or null when they are not shaped like ours. */
function toIdentity(payload: Record<string, unknown>): Identity | null {
  const { sub, exp } = payload;
  if (typeof sub !== "string" || typeof exp !== "number") return null;
  const expiresAt = exp * 1000;
  const grant = parseGrant(payload[GRANT_CLAIM]);
  if (grant === null) return null;
  const granted = grant && { grant };
  if (sub.startsWith(SERVICE_PREFIX)) {
    const service = sub.slice(SERVICE_PREFIX.length);
    const scope = payload.scope ?? "";
    if (!SERVICE_NAME_PATTERN.test(service) || typeof scope !== "string") return null;
    const scopes = scope.split(" ").filter((s) => s.length > 0);
    return { kind: "service", service, scopes, expiresAt, ...granted };
  }
  // A user id is used as a channel id; refuse any that is not one (it also can't contain ':').
  if (validateChannelId(sub) !== null || typeof payload.name !== "string") return null;
  return { kind: "user", userId: sub, userName: payload.name, expiresAt, ...granted };
}

/**
 * Creates the token service. `now` (ms since the epoch, default `Date.now`) exists so tests
 * can issue tokens in the past. `events` hears of JWKS fetches that failed (metrics, logs).
 */
export function createAuth(
  options: AuthOptions,
  now: () => number = Date.now,
  events: KeyEvents = {},
): Auth {
  return new JwtAuth(options, now, events);
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A fresh user id: `u_` + 12 random base-62 characters (~71 bits), a valid channel id. */
export function newUserId(): string {
  let id = "u_";
  while (id.length < 14) {
    for (const byte of getRandomValues(new Uint8Array(16))) {
      // Rejection sampling: 248 = 4 * 62, so the accepted bytes map onto base 62 without bias.
      if (byte < 248 && id.length < 14) id += BASE62[byte % 62];
    }
  }
  return id;
}

/**
 * Where a request's credentials are, as the one parser that authentication and the CSRF check
 * share: `Authorization: Bearer <token>` when that header is present, else the session cookie.
 * An `Authorization` header that is not exactly `Bearer <token>` is `malformed`, never a reason
 * to look at the cookie instead: a request that names its own credentials gets those or none.
 */
export type Credentials =
  | { readonly kind: "bearer"; readonly token: string }
  | { readonly kind: "cookie"; readonly token: string }
  | { readonly kind: "malformed" }
  | { readonly kind: "none" };

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The {@link Credentials} of a request (the cookie needs `@fastify/cookie`). */
export function credentialsOf(request: TokenSource, cookieName: string): Credentials {
  const header: unknown = request.headers.authorization;
  if (header !== undefined) {
    const token = typeof header === "string" ? BEARER.exec(header)?.[1] : undefined;
    return token ? { kind: "bearer", token } : { kind: "malformed" };
  }
  const cookie = request.cookies?.[cookieName];
  return typeof cookie === "string" && cookie.length > 0
    ? { kind: "cookie", token: cookie }
    : { kind: "none" };
}

/**
 * The token of a request ({@link credentialsOf}): the bearer token, else the session cookie
 * `cookieName`; null when there is none or the `Authorization` header is malformed. Nothing
 * else is looked at, deliberately.
 */
export function tokenFromRequest(request: TokenSource, cookieName: string): string | null {
  const credentials = credentialsOf(request, cookieName);
  return "token" in credentials ? credentials.token : null;
}
