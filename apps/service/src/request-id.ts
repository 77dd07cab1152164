/**
 * `X-Request-Id`: a request keeps the id its client or proxy gave it (so one request can be
 * followed from the load balancer's log to the pod's), or gets a new one; either way it is the
 * request's log id (`reqId`) and is echoed on the response — streams included.
 *
 * A client-chosen id is written into logs, so only a plain token is taken: 1–128 characters of
 * letters, digits and `._:-` (a UUID, a ULID, nginx's `$request_id`; `isRequestId`), the
 * same an event carries to the pods that deliver it. Anything else — spaces,
 * control characters, a line break that would forge a log line, an over-long value — is
 * replaced by a fresh UUID rather than refused: the request itself is fine.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { type Delivery, isRequestId } from "@realtime/server";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";

export const REQUEST_ID_HEADER = "x-request-id";

/** Fastify's `genReqId`: the request's own id when it is a plain token, else a new UUID. */
export function requestIdOf(request: Pick<IncomingMessage, "headers">): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return isRequestId(given) ? given : randomUUID();
}

/** Echoes the request's id on every response, before any hook can refuse it. */
export function registerRequestIdEcho(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}

/**
 * The hub's `onDelivered` when the log records `debug`: one line per event this pod wrote to
 * its streams (not per stream), `reqId` the id of the request that published it — on whichever
 * pod it came in — so one message can be followed from that request's lines to every pod that
 * delivered it. Undefined at `info` and above: nothing runs on the delivery path.
 */
export function deliveryLog(log: FastifyBaseLogger): ((delivery: Delivery) => void) | undefined {
  if (log.level !== "debug" && log.level !== "trace") return undefined;
  const deliveries = log.child({ component: "delivery" });
  return ({ requestId, channel, epoch, offset, latencyMs, streams }) => {
    deliveries.debug({ reqId: requestId, channel, epoch, offset, latencyMs, streams }, "delivered");
  };
}
