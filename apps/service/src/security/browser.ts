/**
 * What protects browser users: security headers (`helmet`), CORS with an exact origin
 * allow-list (`@fastify/cors`, only when `CORS_ORIGINS` is set), and the CSRF check on
 * cookie-authenticated requests that change state.
 */
import cors from "@fastify/cors";
import type { FastifyInstance, FastifyRequest } from "fastify";
import helmet, { type HelmetOptions } from "helmet";
import { credentialsOf } from "../auth.ts";
import type { Config } from "../config.ts";
import { appError, Errors } from "../errors.ts";

/**
 * The Content-Security-Policy of every response (the page route sends the same one with the
 * HTML): everything from this origin only, no inline script or style, images also as
 * data:/blob:, no plugins, no framing, no `<base>` hijacking.
 */
export const CSP_DIRECTIVES = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", "data:", "blob:"],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
} as const;

/** Request headers a cross-origin page may send (everything else needs no preflight or is refused). */
const CORS_HEADERS = ["content-type", "authorization", "last-event-id", "idempotency-key"];

/**
 * Security headers on every response. The headers helmet would set, computed once: they depend
 * on these options alone (no CSP directive is a function of the request), so every response
 * gets the same ones. Not through `@fastify/helmet`, which runs `helmet(options)` again for
 * every request — parsing the CSP directives each time, ~9 % of a publish's CPU — and sets them
 * on the raw response, where a long-lived SSE response keeps Node's header map (~2 KB) for
 * hours. As reply headers they reach the raw response in its one `writeHead`. Register it
 * before every other `onRequest` hook, so that their refusals (shutting down, CSRF, limits,
 * authentication) carry the headers too.
 */
export function registerSecurityHeaders(app: FastifyInstance, config: Config): void {
  const securityHeaders = headersOf({
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    // Only where the site is served over TLS: on plain http browsers ignore it anyway, and a
    // development origin must not be pinned to https.
    strictTransportSecurity: config.auth.cookieSecure
      ? { maxAge: 31_536_000, includeSubDomains: false }
      : false,
    referrerPolicy: { policy: "same-origin" },
    // The API is not meant to be embedded by other sites' documents.
    crossOriginResourcePolicy: { policy: "same-origin" },
  });
  app.addHook("onRequest", async (_request, reply) => {
    reply.headers(securityHeaders);
  });
}

/** CORS (when `CORS_ORIGINS` is set) and the CSRF check. */
export async function registerBrowserSecurity(app: FastifyInstance, config: Config): Promise<void> {
  const origins = config.security.corsOrigins;
  if (origins.length > 0) {
    await app.register(cors, {
      // An array is matched exactly, origin by origin: never reflected, never "*".
      origin: [...origins],
      credentials: true,
      methods: ["GET", "HEAD", "POST", "DELETE"],
      allowedHeaders: CORS_HEADERS,
      exposedHeaders: ["retry-after", "location", "idempotent-replayed"],
      maxAge: 600,
      // Its strict mode answers a malformed preflight in plain text; every error here is JSON.
      strictPreflight: false,
    });
  }

  const allowed = new Set(origins);
  const cookieName = config.auth.cookieName;
  app.addHook("onRequest", async (request) => {
    if (!cookieAuthenticated(request, cookieName)) return;
    if (SAFE_METHODS.has(request.method)) {
      // A read needs no Origin, but one that names a page we do not allow is refused: a
      // stream another site opens with the user's cookie would take one of their slots.
      const origin = request.headers.origin;
      if (typeof origin === "string" && !originAllowed(origin, request, allowed)) {
        throw appError(Errors.FORBIDDEN, "Cross-site request refused: Origin is not allowed");
      }
      return;
    }
    const refusal = crossSiteRefusal(request, allowed);
    if (refusal !== null) throw appError(Errors.FORBIDDEN, refusal);
  });
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * The headers `helmet` sets for `options`, recorded once by running its middleware against a
 * response that only records them.
 */
function headersOf(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  const middleware = helmet(options) as unknown as (
    request: unknown,
    response: unknown,
    next: (error?: unknown) => void,
  ) => void;
  middleware({}, response, (error) => {
    if (error) throw error;
  });
  return headers;
}

/**
 * A request that the browser may have authenticated by itself: it carries the session cookie,
 * and its identity does not come from a bearer token (attached by script, which another site
 * cannot do for us, so not CSRF-able). Read with the parser authentication uses: a malformed
 * `Authorization` header lifts nothing here — the route refuses it with 401, and never falls
 * back to the cookie.
 */
function cookieAuthenticated(request: FastifyRequest, cookieName: string): boolean {
  const cookie = request.cookies?.[cookieName];
  if (typeof cookie !== "string" || cookie.length === 0) return false;
  return credentialsOf(request, cookieName).kind !== "bearer";
}

/**
 * Why a cookie-authenticated request must be refused as cross-site, or null when it is not.
 * Same-origin by `Sec-Fetch-Site` (set by the browser, not by script), or an `Origin` (else a
 * `Referer`) naming this host or an allowed origin. Neither header at all: refused.
 */
function crossSiteRefusal(request: FastifyRequest, allowed: ReadonlySet<string>): string | null {
  if (request.headers["sec-fetch-site"] === "same-origin") return null;
  const origin = request.headers.origin;
  if (typeof origin === "string") {
    return originAllowed(origin, request, allowed)
      ? null
      : "Cross-site request refused: Origin is not allowed";
  }
  const referer = request.headers.referer;
  if (typeof referer === "string") {
    let refererOrigin: string | null = null;
    try {
      refererOrigin = new URL(referer).origin;
    } catch {
      // not a URL: refused below
    }
    if (refererOrigin !== null && originAllowed(refererOrigin, request, allowed)) return null;
    return "Cross-site request refused: Referer is not allowed";
  }
  return "Cross-site request refused: a cookie-authenticated request needs an Origin header";
}

/**
 * This host (any scheme: behind a TLS-terminating proxy the pod sees http while the browser
 * says https; a page on this exact host is ours either way), or an allow-listed origin.
 */
function originAllowed(origin: string, request: FastifyRequest, allowed: ReadonlySet<string>) {
  if (allowed.has(origin)) return true;
  if (origin === "null") return false;
  try {
    const url = new URL(origin);
    return (
      (url.protocol === "http:" || url.protocol === "https:") &&
      url.host === request.host.toLowerCase()
    );
  } catch {
    return false;
  }
}
