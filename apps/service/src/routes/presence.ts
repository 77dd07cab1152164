/**
 * `GET /api/channels/:channel/presence` → `{ channel, users: [{ userId, userName, connections }],
 * version, cursor }`: who is online in a `channel:<id>` room, over every pod, for whoever may
 * subscribe to it.
 *
 * `cursor` is the channel's stream position read *before* the snapshot, as an SSE cursor: a
 * client that opens `/api/events?channel=<channel>&lastEventId=<cursor>` gets every `presence`
 * event published after that point, so snapshot and stream join without a gap. Some of those
 * events may already be reflected in the snapshot: those have a `version` ≤ the snapshot's.
 * Two pods' events can also arrive in the other order than decided; per user, keep the event
 * with the greatest `version`.
 */
import { encodeCursor, parseChannel, printable, type StreamPosition } from "@realtime/protocol";
import { type Broker, hasPresence, type Presence, type PresenceSnapshot } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import type { Auth } from "../auth.ts";
import { appError, Errors } from "../errors.ts";
import { authorize } from "./events.ts";
import { NO_QUERY } from "./no-query.ts";

export interface PresenceRouteDeps {
  presence: Presence;
  broker: Broker;
  auth: Auth;
}

const paramsSchema = {
  type: "object",
  properties: { channel: { type: "string", minLength: 1, maxLength: 200 } },
  required: ["channel"],
  additionalProperties: false,
} as const;

export function registerPresenceRoute(app: FastifyInstance, deps: PresenceRouteDeps): void {
  const { presence, broker, auth } = deps;
  app.get(
    "/api/channels/:channel/presence",
    { schema: { params: paramsSchema, querystring: NO_QUERY } },
    async (request, reply) => {
      const raw = (request.params as { channel: string }).channel;
      // A room may be named by its bare id, as in the chat API.
      const parsed = parseChannel(raw.includes(":") ? raw : `channel:${raw}`);
      if (!parsed.ok) throw appError(Errors.BAD_CHANNEL, `${parsed.reason}: "${printable(raw)}"`);
      const channel = parsed.channel.name;
      authorize(await auth.authenticate(request), [channel]);
      if (!hasPresence(channel)) {
        throw appError(Errors.BAD_CHANNEL, "presence is tracked for channel:<id> rooms only");
      }
      let position: StreamPosition;
      let snapshot: PresenceSnapshot;
      try {
        // Position first: whatever changes after it reaches a client resuming from `cursor`.
        position = await broker.position(channel);
        snapshot = await presence.snapshot(channel);
      } catch (error) {
        request.log.warn({ err: error }, "presence snapshot failed");
        throw appError(Errors.BROKER_UNAVAILABLE, "presence is unavailable; try again", {
          "Retry-After": "1",
        });
      }
      reply.header("cache-control", "no-store");
      const { users, version } = snapshot;
      return { channel, users, version, cursor: encodeCursor([[channel, position]]) };
    },
  );
}
