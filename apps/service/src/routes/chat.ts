/**
 * `POST /api/chat/messages { channel, content }` → 204. The message goes out as a `chat` event
 * on `channel:<id>` through the broker; who sent it comes from the token, never the body.
 *
 * With an `Idempotency-Key` header, a retry of a message the broker already accepted (same
 * user, same room, within `IDEMPOTENCY_WINDOW_MS`) is not posted again: 204 plus
 * `Idempotent-Replayed: true` (see `idempotency-key.ts` in `@realtime/server`).
 */

import { NO_QUERY } from "@realtime/fastify";
import { EventType, printable, roomChannel } from "@realtime/protocol";
import type { Hub } from "@realtime/server";
import {
  appError,
  Errors,
  IDEMPOTENCY_HEADERS_SCHEMA,
  REPLAYED_HEADER,
  requestPublishOptions,
} from "@realtime/server";
import type { FastifyInstance } from "fastify";
import type { RouteDoc } from "../api-docs.ts";
import { type ChannelAccess, isUser, requireUser } from "../auth/access.ts";
import { publisherOf } from "../auth/identity.ts";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import { channelNamed, type RouteLimit } from "../security/route-options.ts";

export interface ChatRouteDeps {
  hub: Hub;
  auth: Auth;
  access: ChannelAccess;
  config: Config;
}

/** C0 controls other than tab, LF and CR, DEL, and C1 controls: never useful in a message. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** Per user, and the room's broadcast budget for the users allowed to post there. */
function chatLimit(access: ChannelAccess): RouteLimit {
  return {
    name: "chat",
    by: "identity",
    channelBudget: {
      channel: (body) => channelNamed(body, roomChannel),
      spentBy: async (identity, channel) =>
        isUser(identity) && (await access.allows(identity, channel, "publish")),
    },
  };
}

const docs: RouteDoc = {
  tag: "input",
  summary: "Post a chat message to a room",
  description:
    "Published as a `chat` event on `channel:<id>` to every subscriber, on every pod. With `Idempotency-Key`, a retry of a message already accepted (same user, same room, within `IDEMPOTENCY_WINDOW_MS`) is not posted again: 204 with `Idempotent-Replayed: true`.",
  responses: {
    204: "Accepted by the broker (or a replay: `Idempotent-Replayed: true`)",
    400: "Invalid room or content; `RT_ERR_BAD_IDEMPOTENCY_KEY` for a bad `Idempotency-Key`",
    401: "No valid token",
    403: "A service token, or a room the access rules do not let you post in",
    503: "The broker did not accept it",
  },
};

export function registerChatRoutes(app: FastifyInstance, deps: ChatRouteDeps): void {
  const { hub, auth, access, config } = deps;
  const bodySchema = {
    type: "object",
    properties: {
      channel: { type: "string", minLength: 1, maxLength: 200 },
      content: { type: "string", minLength: 1, maxLength: config.limits.maxChatContentLength },
    },
    required: ["channel", "content"],
    additionalProperties: false,
  } as const;

  const schema = { body: bodySchema, headers: IDEMPOTENCY_HEADERS_SCHEMA, querystring: NO_QUERY };
  const routeConfig = { hubAction: "publish", limit: chatLimit(access), docs } as const;
  app.post("/api/chat/messages", { schema, config: routeConfig }, async (request, reply) => {
    const identity = requireUser(await auth.authenticate(request), "chat needs a user token");
    const options = requestPublishOptions(
      publisherOf(identity),
      request,
      config.publish.idempotencyWindowMs,
    );
    const body = request.body as { channel: string; content: string };
    const room = roomChannel(body.channel);
    if (!room.ok)
      throw appError(Errors.BAD_CHANNEL, `${room.reason}: "${printable(body.channel)}"`);
    if (CONTROL.test(body.content)) {
      throw appError(Errors.BAD_REQUEST, "content has control characters");
    }
    if (body.content.trim().length === 0) throw appError(Errors.BAD_REQUEST, "content is blank");
    await access.require(identity, [room.channel.name], "publish");
    const position = await hub.publish(
      room.channel.name,
      {
        type: EventType.Chat,
        userId: identity.userId,
        userName: identity.userName,
        content: body.content,
      },
      options,
    );
    if (position.duplicate) reply.header(REPLAYED_HEADER, "true");
    return reply.code(204).send();
  });
}
