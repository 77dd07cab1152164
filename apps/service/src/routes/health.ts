import { appError, Errors } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { json, type RouteDoc } from "../api-docs.ts";
import type { PrometheusMetrics } from "../prometheus-metrics.ts";

const DOCS = {
  healthz: {
    tag: "operations",
    summary: "Liveness: 200 while the process runs",
    auth: false,
    responses: {
      200: json("Alive", {
        type: "object",
        required: ["status"],
        properties: { status: { type: "string", enum: ["ok"] } },
      }),
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

export function registerHealthRoutes(app: FastifyInstance): void {
  app.get("/healthz", { config: { docs: DOCS.healthz } }, async () => ({ status: "ok" }));
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
