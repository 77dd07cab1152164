/**
 * The internal listener for `GET /metrics` (`METRICS_PORT`): a Fastify instance of its own, with
 * no other route, no auth and no hooks of the public app, so metrics leave the public port —
 * which then answers 404 for them — and reach only whoever can reach this port (the proxy
 * forwards only `PORT`). Plain HTTP/1.1 whatever the public port speaks, as Prometheus scrapes.
 */

import { registerErrorHandling } from "@realtime/fastify";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { PrometheusMetrics } from "./prometheus-metrics.ts";
import { registerMetricsRoute } from "./routes/health.ts";

/** Builds the metrics listener (not listening yet: `listen` on `METRICS_HOST:METRICS_PORT`). */
export function createMetricsServer(
  metrics: PrometheusMetrics,
  log: FastifyBaseLogger,
): FastifyInstance {
  const app = Fastify({
    loggerInstance: log.child({ component: "metrics" }),
    // Scrapes are short; a stuck scraper must not hold the process open at shutdown.
    forceCloseConnections: true,
  }) as unknown as FastifyInstance;
  registerErrorHandling(app);
  registerMetricsRoute(app, metrics);
  return app;
}
