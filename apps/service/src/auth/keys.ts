/**
 * Which key checks a token, as `../auth.ts` asks before `jwtVerify`: the shared secret
 * (`JWT_SECRET`) for the HS* algorithms, an identity provider's JWKS (`JWT_JWKS_URL`) for the
 * asymmetric ones, and nothing for any algorithm `JWT_ALGORITHMS` does not allow.
 *
 * No algorithm confusion: the two families never share a key. A token's header says which
 * family it claims, and then it is checked only within that family — `jwtVerify` gets the
 * family's allowed algorithms and that family's key, so an HS256 token is checked with the
 * secret and never with a public key from the JWKS (the classic forgery: an HMAC keyed with
 * the public key's bytes), and an RS256 token never with the secret. `none` is never allowed
 * (config refuses it; jose refuses it without an unsecured-JWT call anyway).
 *
 * The JWKS is jose's `createRemoteJWKSet`: fetched on first use, cached for `cacheMaxAgeMs`,
 * fetched again on an unknown `kid` (a rotated-in key) unless the last fetch is under
 * `cooldownMs` old, each fetch bounded by `timeoutMs`. Around it, one thing jose does not do:
 * when a fetch fails, the keys of the last good fetch keep verifying (a JWKS endpoint that is
 * down must not log everyone out when the cache ages), the failure is reported once, and no
 * fetch is tried again for `cooldownMs` (jose's own cooldown counts from the last *successful*
 * fetch only, so without this every token would wait for another failing fetch).
 */
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  type ExportedJWKSCache,
  errors,
  type FlattenedJWSInput,
  type JWKSCacheInput,
  type JWSHeaderParameters,
  type JWTVerifyGetKey,
  jwksCache,
  type LocalJWKSet,
  type RemoteJWKSet,
} from "jose";
import {
  defaultAlgorithms,
  type HmacAlgorithm,
  isHmacAlgorithm,
  isJwksAlgorithm,
  type JwksAlgorithm,
  type JwksConfig,
  type JwtAlgorithm,
} from "../config/auth.ts";

export interface KeyOptions {
  /** The shared secret for HS* tokens (`JWT_SECRET`, or the generated one). */
  readonly secret: string;
  /** Allowed `alg` values (`JWT_ALGORITHMS`). Default: {@link defaultAlgorithms}. */
  readonly algorithms?: readonly JwtAlgorithm[] | undefined;
  /** The identity provider's key set, or null/absent for none. */
  readonly jwks?: JwksConfig | null | undefined;
}

export interface KeyEvents {
  /**
   * A JWKS fetch failed: unreachable, timed out, not 200, or not a usable key set. Called once
   * per failed fetch (however many verifications were waiting for it). The error comes from
   * the fetch and never holds a token.
   */
  readonly jwksFetchFailed?: (error: unknown) => void;
}

/** What `jwtVerify` checks one token with: the key (or resolver) and the algorithms allowed. */
export interface Verification {
  readonly key: CryptoKey | JWTVerifyGetKey;
  readonly algorithms: string[];
}

/** The keys of {@link KeyOptions}, imported or fetched once, chosen per token. */
export class TokenKeys {
  readonly #secret: Uint8Array<ArrayBuffer>;
  /** HMAC keys per algorithm, imported into WebCrypto once (not on every sign and verify). */
  readonly #hmac = new Map<HmacAlgorithm, Promise<CryptoKey>>();
  readonly #hmacAllowed: HmacAlgorithm[];
  readonly #jwksAllowed: JwksAlgorithm[];
  readonly #jwks: JwksKeys | null;

  constructor(options: KeyOptions, events: KeyEvents = {}) {
    this.#secret = new TextEncoder().encode(options.secret);
    const jwks = options.jwks ?? null;
    const algorithms = options.algorithms ?? defaultAlgorithms(jwks !== null);
    this.#hmacAllowed = algorithms.filter(isHmacAlgorithm);
    // Without a key set, an asymmetric algorithm has nothing to be checked with.
    this.#jwksAllowed = jwks === null ? [] : algorithms.filter(isJwksAlgorithm);
    this.#jwks = jwks === null ? null : new JwksKeys(jwks, events);
  }

  /** The HMAC key of the secret for `alg` (signing uses HS256 whatever is allowed). */
  hmacKey(alg: HmacAlgorithm): Promise<CryptoKey> {
    let key = this.#hmac.get(alg);
    if (key === undefined) {
      const hash = `SHA-${alg.slice(2)}`;
      key = crypto.subtle.importKey("raw", this.#secret, { name: "HMAC", hash }, false, [
        "sign",
        "verify",
      ]);
      this.#hmac.set(alg, key);
    }
    return key;
  }

  /**
   * How to check `token`. Throws a jose error (→ 401) when its header does not parse or names
   * an algorithm that is not allowed; the header's `alg` only picks the family, and
   * `jwtVerify` checks it again against that family's list.
   */
  async forToken(token: string): Promise<Verification> {
    const { alg } = decodeProtectedHeader(token);
    if (typeof alg === "string" && isHmacAlgorithm(alg) && this.#hmacAllowed.includes(alg)) {
      return { key: await this.hmacKey(alg), algorithms: [alg] };
    }
    if (
      this.#jwks !== null &&
      typeof alg === "string" &&
      isJwksAlgorithm(alg) &&
      this.#jwksAllowed.includes(alg)
    ) {
      return { key: this.#jwks.getKey, algorithms: [...this.#jwksAllowed] };
    }
    throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  }
}

/**
 * A key selected by the token's header (`kid`, `alg`), but no key: jose's verdict on the set,
 * not a failure to get it.
 */
function isSelectionError(error: unknown): boolean {
  return (
    error instanceof errors.JWKSNoMatchingKey ||
    error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSENotSupported
  );
}

/** jose's remote JWKS, plus the last good set while fetching fails (see the file comment). */
class JwksKeys {
  readonly #remote: RemoteJWKSet;
  /** Written by jose after every successful fetch: the set and when (`uat`). */
  readonly #cache: Partial<ExportedJWKSCache> = {};
  #lastGood: { readonly uat: number; readonly keys: LocalJWKSet } | null = null;
  /** `performance.now()` before which no fetch is tried, after a failed one. */
  #backOffUntil = 0;
  /** The last failure reported, so the verifications that waited for one fetch report it once. */
  #reported: unknown;
  readonly #cooldownMs: number;
  readonly #events: KeyEvents;

  constructor(config: JwksConfig, events: KeyEvents) {
    this.#cooldownMs = config.cooldownMs;
    this.#events = events;
    this.#remote = createRemoteJWKSet(new URL(config.url), {
      cacheMaxAge: config.cacheMaxAgeMs,
      cooldownDuration: config.cooldownMs,
      timeoutDuration: config.timeoutMs,
      [jwksCache]: this.#cache as JWKSCacheInput,
    });
  }

  /** The resolver `jwtVerify` calls with the token's header. */
  readonly getKey = async (
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<CryptoKey> => {
    if (performance.now() < this.#backOffUntil) return this.#fromLastGood(header, token);
    try {
      return await this.#remote(header, token);
    } catch (error) {
      if (isSelectionError(error)) throw error;
      this.#fetchFailed(error);
      return this.#fromLastGood(header, token);
    }
  };

  #fetchFailed(error: unknown): void {
    this.#backOffUntil = performance.now() + this.#cooldownMs;
    if (error === this.#reported) return;
    this.#reported = error;
    this.#events.jwksFetchFailed?.(error);
  }

  async #fromLastGood(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
    const { uat, jwks } = this.#cache;
    if (uat === undefined || jwks === undefined) {
      throw new errors.JWKSNoMatchingKey("no JSON Web Key Set has been fetched yet");
    }
    if (this.#lastGood?.uat !== uat) this.#lastGood = { uat, keys: createLocalJWKSet(jwks) };
    return this.#lastGood.keys(header, token);
  }
}
