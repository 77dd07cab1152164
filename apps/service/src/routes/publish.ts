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
import { json, type RouteDoc } from "../api-docs.ts";
import { type ChannelAccess, mayPublish, requirePublisher } from "../auth/access.ts";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import { appError, Errors } from "../errors.ts";
import { IDEMPOTENCY_HEADERS_SCHEMA, idempotentPublish, REPLAYED_HEADER } from "../idempotency.ts";
import { channelNamed, type RouteLimit } from "../security/route-options.ts";
import { NO_QUERY } from "./no-query.ts";

export interface PublishRouteDeps {
  hub: Hub;
  auth: Auth;
  access: ChannelAccess;
  config: Config;
}

const bodySchema = {
  type: "object",
  properties: {
    channel: { type: "string", minLength: 1, maxLength: 200 },
    event: { type: "object" },
  },
  required: ["channel", "event"],
  additionalProperties: false,
} as const;

/** Per service token, and the channel's broadcast budget for those allowed to publish there. */
function publishLimit(access: ChannelAccess): RouteLimit {
  return {
    name: "publish",
    by: "identity",
    channelBudget: {
      channel: (body) => channelNamed(body, parseChannel),
      spentBy: async (identity, channel) =>
        mayPublish(identity) && (await access.allows(identity, channel, "publish")),
    },
  };
}

const docs: RouteDoc = {
  tag: "input",
  summary: "Publish an event (backend services)",
  description:
    "Needs a service token with the `publish` scope (`npm run token`). `event` needs a `type` (`^[a-z][a-z0-9_.-]{0,63}$`) and is at most 16 KiB of JSON. With `Idempotency-Key`, a retry of a publish already accepted (same service, same channel, within `IDEMPOTENCY_WINDOW_MS`) publishes nothing and gets the first answer, with `Idempotent-Replayed: true`.",
  responses: {
    202: json(
      "The event's position in its channel (a replay: the first publish's, with `Idempotent-Replayed: true`)",
      {
        type: "object",
        properties: { channel: { type: "string" }, offset: { type: "integer", minimum: 1 } },
      },
    ),
    400: "Invalid channel or event; `RT_ERR_BAD_IDEMPOTENCY_KEY` for a bad `Idempotency-Key`",
    401: "No valid token",
    403: "Not a service token with the publish scope, or a channel the access rules do not let it publish on",
    503: "The broker did not accept it",
  },
};

export function registerPublishRoute(app: FastifyInstance, deps: PublishRouteDeps): void {
  const { hub, auth, access, config } = deps;
  const schema = { body: bodySchema, headers: IDEMPOTENCY_HEADERS_SCHEMA, querystring: NO_QUERY };
  const routeConfig = { hubAction: "publish", limit: publishLimit(access), docs } as const;
  app.post("/api/publish", { schema, config: routeConfig }, async (request, reply) => {
    const identity = await auth.authenticate(request);
    requirePublisher(identity);
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
    await access.require(identity, [channel.channel.name], "publish");
    const position = await hub.publish(channel.channel.name, body.event as EventInput, options);
    if (position.duplicate) reply.header(REPLAYED_HEADER, "true");
    return reply.code(202).send({ channel: channel.channel.name, offset: position.offset });
  });
}
