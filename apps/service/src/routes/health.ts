/**
 * Liveness (`/healthz`: the process answers), readiness (`/readyz`: this pod should get new
 * streams — false while draining or while the broker is not confirmed live) and `/metrics`.
 */
import type { Broker, Hub } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { Errors, errorBody } from "../errors.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";

export interface HealthRouteDeps {
  hub: Hub;
  broker: Broker;
  metrics: PrometheusMetrics;
}

export function registerHealthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  const { hub, broker, metrics } = deps;
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

  app.get("/metrics", async (_request, reply) => {
    reply.header("content-type", metrics.contentType);
    return metrics.render();
  });
}
