/**
 * `realtime_http_request_duration_seconds`: every answered HTTP request of the public app, by
 * route template, method and status, from the router taking it to the answer's last byte.
 *
 * The label values are bounded whatever clients send: `route` is the template a route was
 * registered with (`/api/channels/:channel/messages`, never the path), or one value,
 * {@link UNMATCHED_ROUTE}, for every request no route matched (a scanner's thousand paths are
 * one series); `method` is one Node's parser knows; `status_code` one the service answers.
 *
 * Routes that open SSE streams (`config: { opensStream: true }`) are left out: their response
 * ends when the stream does, so they would measure stream lifetimes, minutes long, and bury
 * every other route's figures. How long a stream takes to open is
 * `realtime_stream_open_seconds`; its refusals are `realtime_streams_refused_total`.
 */
import type { FastifyInstance } from "fastify";
import { type PrometheusMetrics, UNMATCHED_ROUTE } from "./prometheus-metrics.ts";

/** Hooks the timing into every route of `app`. Call before the routes are registered. */
export function registerHttpMetrics(app: FastifyInstance, metrics: PrometheusMetrics): void {
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions;
    if ((route.config as { opensStream?: boolean } | undefined)?.opensStream !== true) {
      metrics.httpRequest(
        route.url ?? UNMATCHED_ROUTE,
        request.method,
        reply.statusCode,
        reply.elapsedTime / 1000,
      );
    }
    done();
  });
}
