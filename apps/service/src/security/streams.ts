/**
 * Admission of SSE streams beyond what the route and the hub check: the per-user and per-IP
 * caps ({@link ConnectionLimits}), and a token that would expire before the hub could close
 * the stream in time.
 *
 * The hub closes a stream with `close` 3005 (`token_expired`) when the `expiresAt` it was
 * given comes, on a timer of the stream's own; the route hands it the token's `exp` minus
 * {@link TOKEN_EXPIRY_MARGIN_MS}, so the stream ends before `exp` with that margin to spare for
 * a late timer on a busy pod and the close's way to the client. A token with less than the
 * margin left is refused with 401 `RT_ERR_TOKEN_EXPIRED`: the client refreshes first.
 */

import { appError, Errors, releaseOnClose } from "@realtime/server";
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import type { Auth } from "../auth.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";
import type { ConnectionLimits } from "./connection-limits.ts";
import { addHook } from "./route-options.ts";

/**
 * How long before the token's `exp` the hub is asked to close the stream: slack for a timer
 * that fires late on a busy pod, so the stream still ends no later than `exp`.
 */
export const TOKEN_EXPIRY_MARGIN_MS = 1000;

export interface StreamAdmissionDeps {
  readonly auth: Auth;
  readonly limits: ConnectionLimits;
  readonly metrics: PrometheusMetrics;
  readonly now?: () => number;
}

/**
 * Hooks the admission checks into every route that opens streams (`config: { opensStream }`:
 * `GET /api/events`, which has no HEAD twin). Call before routes.
 */
export function registerStreamAdmission(app: FastifyInstance, deps: StreamAdmissionDeps): void {
  const { auth, limits, metrics } = deps;
  const now = deps.now ?? Date.now;
  app.addHook("onRoute", (route: RouteOptions) => {
    if (route.config?.opensStream !== true) return;
    addHook(route, "preHandler", async (request: FastifyRequest, reply: FastifyReply) => {
      let identity: Awaited<ReturnType<Auth["authenticate"]>>;
      try {
        identity = await auth.authenticate(request);
      } catch {
        return; // the route answers 401 and counts it
      }
      if (identity.kind !== "user") return; // the route answers 403
      if (identity.expiresAt - TOKEN_EXPIRY_MARGIN_MS <= now()) {
        metrics.connectionRefused(Errors.TOKEN_EXPIRED.code);
        throw appError(
          Errors.TOKEN_EXPIRED,
          "The token expires too soon to open a stream; refresh it first",
        );
      }
      const lease = await limits.acquire(identity.userId, request.ip);
      if (typeof lease === "string") {
        metrics.connectionRefused(lease);
        const which = lease === "per_user_limit" ? "this user" : "this address";
        throw appError(Errors.TOO_MANY_CONNECTIONS, `Too many open streams for ${which}`, {
          "Retry-After": String(1 + Math.floor(Math.random() * 10)),
        });
      }
      // Released when the response closes, or at once when its client is gone already (an
      // HTTP/2 stream cancelled while the request was checked: its close event is past).
      releaseOnClose(reply.raw, lease);
    });
  });
}
