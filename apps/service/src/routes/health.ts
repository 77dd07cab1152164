/**
 * Liveness (`/healthz`: the process answers), readiness (`/readyz`: this pod should get new
 * streams — false while draining or while the broker is not confirmed live) and `/metrics`
 * (on the public port, or on its own listener when `METRICS_PORT` is set: metrics-server.ts).
 */
import type { Broker, Hub } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { appError, Errors, errorBody } from "../errors.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";

export interface HealthRouteDeps {
  hub: Hub;
  broker: Broker;
}

export function registerHealthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  const { hub, broker } = deps;
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    if (!hub.accepting) {
      return reply.code(503).send(errorBody(Errors.SHUTTING_DOWN));
    }
    if (!broker.ready()) {
      return reply.code(503).send({
        code: Errors.BROKER_UNAVAILABLE.code,
        message: "The broker is not confirmed live (connecting or re-subscribing)",
      });
    }
    return { status: "ready", connections: hub.connectionCount };
  });
}

/** `GET /metrics`: Prometheus text, rendered at scrape time. */
export function registerMetricsRoute(app: FastifyInstance, metrics: PrometheusMetrics): void {
  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.contentType);
    return metrics.render();
  });
}

/**
 * `GET /metrics` on the public port when the metrics have a listener of their own: a catalogue
 * 404, declared so that the web app's fallback (any unknown GET gets the page) does not answer
 * 200 for it either.
 */
export function registerMetricsElsewhere(app: FastifyInstance): void {
  app.get("/metrics", async () => {
    throw appError(Errors.NOT_FOUND);
  });
}
