/**
 * `X-Request-Id`: a request keeps the id its client or proxy gave it (so one request can be
 * followed from the load balancer's log to the pod's), or gets a new one; either way it is the
 * request's log id (`reqId`) and is echoed on the response — streams included.
 *
 * A client-chosen id is written into logs, so only a plain token is taken: 1–128 characters of
 * letters, digits and `._:-` (a UUID, a ULID, nginx's `$request_id`). Anything else — spaces,
 * control characters, a line break that would forge a log line, an over-long value — is
 * replaced by a fresh UUID rather than refused: the request itself is fine.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyInstance } from "fastify";

export const REQUEST_ID_HEADER = "x-request-id";
const ACCEPTED = /^[A-Za-z0-9._:-]{1,128}$/;

/** Fastify's `genReqId`: the request's own id when it is a plain token, else a new UUID. */
export function requestIdOf(request: Pick<IncomingMessage, "headers">): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === "string" && ACCEPTED.test(given) ? given : randomUUID();
}

/** Echoes the request's id on every response, before any hook can refuse it. */
export function registerRequestIdEcho(app: FastifyInstance): void {
  app.addHook("onRequest", async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });
}
