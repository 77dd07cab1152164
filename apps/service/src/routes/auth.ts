/**
 * The dev-login routes: `POST /api/auth/dev-login` hands out a token (and the HttpOnly session
 * cookie) in development, `GET /api/auth/me` says who a token is, `POST /api/auth/logout`
 * clears the cookie. Tokens themselves are auth.ts's.
 */
import type { CookieSerializeOptions } from "@fastify/cookie";
import { NO_QUERY } from "@realtime/fastify";
import { appError, Errors } from "@realtime/server";
import type { FastifyInstance, RawServerBase } from "fastify";
import { json, type RouteDoc, USER } from "../api-docs.ts";
import { requireUser } from "../auth/access.ts";
import { type Auth, newUserId } from "../auth.ts";
import type { AuthConfig } from "../config.ts";
import type { RouteLimit } from "../security/route-options.ts";

/** Longest display name for dev login, in characters. */
export const MAX_NAME_LENGTH = 40;

/**
 * Control characters, zero-width and bidi-override characters: a display name shown to other
 * users must not be able to break a line, hide text or reorder it.
 */
const NAME_PATTERN =
  "^[^\\u0000-\\u001f\\u007f-\\u009f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff]+$";

const devLoginSchema = {
  querystring: NO_QUERY,
  body: {
    type: "object",
    required: ["name"],
    additionalProperties: false,
    properties: {
      name: { type: "string", minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN },
    },
  },
} as const;

/** Dev logins per client IP: whoever names themselves gets a token. */
const devLoginLimit: RouteLimit = { name: "login", by: "ip" };

const DOCS = {
  devLogin: {
    tag: "auth",
    summary: "Sign in by name (development only)",
    description:
      "Issues a user token and sets the HttpOnly session cookie. Refused with 403 `RT_ERR_DEV_LOGIN_DISABLED` unless `AUTH_DEV_LOGIN` is on (the default outside production).",
    auth: false,
    responses: {
      200: json("The token and the user", {
        type: "object",
        required: ["token", "user"],
        properties: { token: { type: "string", description: "A user JWT" }, user: USER },
      }),
      400: "Invalid name",
      403: "Dev login is disabled",
    },
  },
  logout: {
    tag: "auth",
    summary: "Clear the session cookie",
    auth: false,
    responses: { 204: "Cleared" },
  },
  me: {
    tag: "auth",
    summary: "Who the token names",
    responses: {
      200: json("The user", { type: "object", required: ["user"], properties: { user: USER } }),
      401: "No valid token",
      403: "A service token (it has no user)",
    },
  },
} as const satisfies Record<string, RouteDoc>;

/**
 * Adds the auth routes. Register `@fastify/cookie` on `app` first.
 *
 * - `POST /api/auth/dev-login` `{ name }` → 200 `{ token, user: { id, name } }` and the session
 *   cookie; 403 `RT_ERR_DEV_LOGIN_DISABLED` unless `config.auth.devLogin`.
 * - `POST /api/auth/logout` → 204, clears the cookie.
 * - `GET /api/auth/me` → 200 `{ user: { id, name } }`, 401 without a valid token, 403 for a
 *   service token (it has no user).
 */
export function registerAuthRoutes<S extends RawServerBase>(
  app: FastifyInstance<S>,
  { auth, config }: { auth: Auth; config: { readonly auth: AuthConfig } },
): void {
  const { cookieName, cookieSecure, tokenTtlSeconds, devLogin } = config.auth;
  const cookieOptions: CookieSerializeOptions = {
    path: "/",
    httpOnly: true,
    sameSite: "lax",
    secure: cookieSecure,
  };

  app.post<{ Body: { name: string } }>(
    "/api/auth/dev-login",
    {
      schema: devLoginSchema,
      config: { limit: devLoginLimit, docs: DOCS.devLogin },
      // Refuse before the body is read, so a disabled endpoint says so whatever is sent.
      onRequest: async () => {
        if (!devLogin) throw appError(Errors.DEV_LOGIN_DISABLED);
      },
    },
    async (request, reply) => {
      const name = request.body.name.normalize("NFC").trim();
      if (name.length === 0) throw appError(Errors.BAD_REQUEST, "body.name must not be blank");
      const user = { id: newUserId(), name };
      const token = await auth.issueUserToken(user);
      reply.setCookie(cookieName, token, { ...cookieOptions, maxAge: tokenTtlSeconds });
      reply.header("cache-control", "no-store");
      return { token, user };
    },
  );

  const schema = { querystring: NO_QUERY };

  app.post(
    "/api/auth/logout",
    { schema, config: { docs: DOCS.logout } },
    async (_request, reply) => {
      reply.clearCookie(cookieName, cookieOptions);
      reply.code(204);
      return reply.send();
    },
  );

  app.get("/api/auth/me", { schema, config: { docs: DOCS.me } }, async (request, reply) => {
    const identity = requireUser(await auth.authenticate(request), "A service token has no user");
    reply.header("cache-control", "no-store");
    return { user: { id: identity.userId, name: identity.userName } };
  });
}
