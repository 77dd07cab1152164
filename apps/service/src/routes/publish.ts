/**
 * `POST /api/publish { channel, event }` → 202 `{ channel, offset }`: for backend services in
 * any language. Authorized by a service token with the `publish` scope; user tokens get 403.
 * The event goes through the same validation, size limit and broker path as a user's post.
 *
 * With an `Idempotency-Key` header, a retry of a publish the broker already accepted (same
 * service, same channel, within `IDEMPOTENCY_WINDOW_MS`) publishes nothing and gets the first
 * answer — 202 with the same offset — plus `Idempotent-Replayed: true` (see idempotency.ts).
 */
import { parseChannel, printable, validateEventInput } from "@realtime/protocol";
import type { EventInput, Hub } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import { appError, Errors } from "../errors.ts";
import { toAppError } from "../hub-errors.ts";
import { IDEMPOTENCY_HEADERS_SCHEMA, idempotentPublish, REPLAYED_HEADER } from "../idempotency.ts";
import { NO_QUERY } from "./no-query.ts";

export interface PublishRouteDeps {
  hub: Hub;
  auth: Auth;
  config: Config;
}

/** The scope a service token needs to publish. */
export const PUBLISH_SCOPE = "publish";

const bodySchema = {
  type: "object",
  properties: {
    channel: { type: "string", minLength: 1, maxLength: 200 },
    event: { type: "object" },
  },
  required: ["channel", "event"],
  additionalProperties: false,
} as const;

export function registerPublishRoute(app: FastifyInstance, deps: PublishRouteDeps): void {
  const { hub, auth, config } = deps;
  const schema = { body: bodySchema, headers: IDEMPOTENCY_HEADERS_SCHEMA, querystring: NO_QUERY };
  app.post("/api/publish", { schema }, async (request, reply) => {
    const identity = await auth.authenticate(request);
    if (identity.kind !== "service" || !identity.scopes.includes(PUBLISH_SCOPE)) {
      throw appError(
        Errors.FORBIDDEN,
        `publishing needs a service token with the "${PUBLISH_SCOPE}" scope`,
      );
    }
    const options = idempotentPublish(
      identity,
      request.headers,
      config.publish.idempotencyWindowMs,
    );
    const body = request.body as { channel: string; event: unknown };
    const channel = parseChannel(body.channel);
    if (!channel.ok) {
      throw appError(Errors.BAD_CHANNEL, `${channel.reason}: "${printable(body.channel)}"`);
    }
    const problem = validateEventInput(body.event);
    if (problem) throw appError(Errors.BAD_REQUEST, problem);
    try {
      const position = await hub.publish(channel.channel.name, body.event as EventInput, options);
      if (position.duplicate) reply.header(REPLAYED_HEADER, "true");
      return reply.code(202).send({ channel: channel.channel.name, offset: position.offset });
    } catch (error) {
      throw toAppError(error, "publish");
    }
  });
}
