/**
 * Liveness (`/healthz`: the process answers), readiness (`/readyz`: this pod should get new
 * streams — false while draining or while the broker is not confirmed live) and `/metrics`
 * (on the public port, or on its own listener when `METRICS_PORT` is set: metrics-server.ts).
 */
import type { Broker, Hub } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { json, type RouteDoc } from "../api-docs.ts";
import { appError, Errors, errorBody } from "../errors.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";

export interface HealthRouteDeps {
  hub: Hub;
  broker: Broker;
}

const DOCS = {
  healthz: {
    tag: "operations",
    summary: "Liveness: 200 while the process runs",
    auth: false,
    responses: {
      200: json("Alive", { type: "object", properties: { status: { type: "string" } } }),
    },
  },
  readyz: {
    tag: "operations",
    summary: "Readiness: should this pod get new streams?",
    description:
      "503 `RT_ERR_SHUTTING_DOWN` from the moment a drain starts (SIGTERM), 503 `RT_ERR_BROKER_UNAVAILABLE` while the broker is not confirmed live. Point the load balancer's readiness check here.",
    auth: false,
    responses: {
      200: json("Ready", {
        type: "object",
        properties: { status: { type: "string" }, connections: { type: "integer" } },
      }),
      503: "Draining or the broker is not live",
    },
  },
  metrics: {
    tag: "operations",
    summary: "Prometheus metrics (docs/operations.md)",
    auth: false,
    responses: {
      200: {
        description: "Prometheus text exposition",
        content: { "text/plain": { schema: { type: "string" } } },
      },
    },
  },
} as const satisfies Record<string, RouteDoc>;

export function registerHealthRoutes(app: FastifyInstance, deps: HealthRouteDeps): void {
  const { hub, broker } = deps;
  app.get("/healthz", { config: { docs: DOCS.healthz } }, async () => ({ status: "ok" }));

  app.get("/readyz", { config: { docs: DOCS.readyz } }, async (_request, reply) => {
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
  app.get("/metrics", { config: { docs: DOCS.metrics } }, async (_request, reply) => {
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
  app.get("/metrics", { config: { docs: DOCS.metrics } }, async () => {
    throw appError(Errors.NOT_FOUND);
  });
}
