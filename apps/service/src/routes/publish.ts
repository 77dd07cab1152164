/**
 * `POST /api/publish { channel, event }` → 202 `{ channel, offset }`: for backend services in
 * any language. Authorized by a service token with the `publish` scope; user tokens get 403.
 * The event goes through the same validation, size limit and broker path as a user's post.
 */
import { parseChannel, printable, validateEventInput } from "@realtime/protocol";
import type { EventInput, Hub } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import type { Auth } from "../auth.ts";
import { appError, Errors } from "../errors.ts";
import { toAppError } from "../hub-errors.ts";

export interface PublishRouteDeps {
  hub: Hub;
  auth: Auth;
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
  const { hub, auth } = deps;
  app.post("/api/publish", { schema: { body: bodySchema } }, async (request, reply) => {
    const identity = await auth.authenticate(request);
    if (identity.kind !== "service" || !identity.scopes.includes(PUBLISH_SCOPE)) {
      throw appError(
        Errors.FORBIDDEN,
        `publishing needs a service token with the "${PUBLISH_SCOPE}" scope`,
      );
    }
    const body = request.body as { channel: string; event: unknown };
    const channel = parseChannel(body.channel);
    if (!channel.ok) {
      throw appError(Errors.BAD_CHANNEL, `${channel.reason}: "${printable(body.channel)}"`);
    }
    const problem = validateEventInput(body.event);
    if (problem) throw appError(Errors.BAD_REQUEST, problem);
    try {
      const position = await hub.publish(channel.channel.name, body.event as EventInput);
      return reply.code(202).send({ channel: channel.channel.name, offset: position.offset });
    } catch (error) {
      throw toAppError(error);
    }
  });
}
