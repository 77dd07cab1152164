/**
 * What protects browser users: security headers (`helmet`), CORS with an exact origin
 * allow-list (`@fastify/cors`, only when `CORS_ORIGINS` is set), the CSRF check on
 * cookie-authenticated requests that change state, and the same-site check on
 * cookie-authenticated reads of the API.
 */
import cors from "@fastify/cors";
import { appError, Errors } from "@realtime/server";
import type { FastifyInstance, FastifyRequest } from "fastify";
import helmet, { type HelmetOptions } from "helmet";
import { credentialsOf } from "../auth.ts";
import type { Config } from "../config.ts";

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
  app.addHook("onRequest", (_request, reply, done) => {
    reply.headers(securityHeaders);
    done();
  });
}

/** CORS (when `CORS_ORIGINS` is set), the CSRF check and the same-site check on reads. */
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
  app.addHook("onRequest", (request, _reply, done) => {
    if (!cookieAuthenticated(request, cookieName)) return done();
    const refusal = SAFE_METHODS.has(request.method)
      ? crossSiteReadRefusal(request, allowed)
      : crossSiteRefusal(request, allowed);
    done(refusal === null ? undefined : appError(Errors.FORBIDDEN, refusal));
  });
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Routes no navigation may open, from any site (a link, `window.open`, `location =`, a typed
 * URL): a stream takes one of the user's slots and joins them to rooms, and presence says who
 * is in a room. The app reads them with EventSource and fetch, never by navigating.
 */
const NOT_NAVIGABLE: ReadonlySet<string> = new Set([
  "/api/events",
  "/api/channels/:channel/presence",
]);

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
 * Why a cookie-authenticated read must be refused, or null when it may go on.
 *
 * - An `Origin` that is neither this host nor allowed (a cross-origin `EventSource` or
 *   `fetch`): refused anywhere.
 * - The API (`/api/…`; the page and its files stay open to a link from anywhere): Fetch
 *   Metadata, set by the browser and not by script, says `cross-site` or `same-site` and the
 *   request has no allowed `Origin` — another site's link, `window.open`, `location =`,
 *   `<img>`: a top-level navigation carries the `SameSite=Lax` cookie on a GET and no `Origin`.
 *   A credentialed `EventSource` from a `CORS_ORIGINS` page sends its `Origin` and passes.
 * - {@link NOT_NAVIGABLE} routes: any navigation (`Sec-Fetch-Mode: navigate`), even our own.
 *
 * A browser without Fetch Metadata sends none of these on a navigation: see docs/security.md,
 * residual risks.
 */
function crossSiteReadRefusal(
  request: FastifyRequest,
  allowed: ReadonlySet<string>,
): string | null {
  const origin = request.headers.origin;
  const listed = typeof origin === "string" && originAllowed(origin, request, allowed);
  if (typeof origin === "string" && !listed) {
    return "Cross-site request refused: Origin is not allowed";
  }
  const route = request.routeOptions.url;
  if (route === undefined || !route.startsWith("/api/")) return null;
  const site = request.headers["sec-fetch-site"];
  if ((site === "cross-site" || site === "same-site") && !listed) {
    return "Cross-site request refused: another site may not read the API with the session cookie";
  }
  if (request.headers["sec-fetch-mode"] === "navigate" && NOT_NAVIGABLE.has(route)) {
    return "Navigation refused: streams and presence are opened with EventSource or fetch, not by navigating to them";
  }
  return null;
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
