/**
 * `GET /api/channels/:channel/presence` → `{ channel, users: [{ userId, userName, connections }],
 * total, truncated, version, cursor }`: who is online in a `channel:<id>` room, over every pod,
 * for whoever may subscribe to it.
 *
 * A room larger than `maxUsers` (`PRESENCE_SNAPSHOT_MAX_USERS`) is listed in part: `users` holds
 * `maxUsers` of them (the first by user id, and the reader when they are in the room),
 * `total` counts them all and `truncated` is true. The read itself still walks the room; the
 * answer, its serialisation and the bytes on the wire are bounded (and reads are rate-limited
 * per user, rate-limit.ts).
 *
 * `cursor` is the channel's stream position read *before* the snapshot, as an SSE cursor: a
 * client that opens `/api/events?channel=<channel>&lastEventId=<cursor>` gets every `presence`
 * event published after that point, so snapshot and stream join without a gap. Some of those
 * events may already be reflected in the snapshot: those have a `version` ≤ the snapshot's.
 * Two pods' events can also arrive in the other order than decided; per user, keep the event
 * with the greatest `version`.
 */

import { CHANNEL_PARAMS, channelParam, NO_QUERY } from "@realtime/fastify";
import { encodeCursor, type StreamPosition } from "@realtime/protocol";
import {
  appError,
  type Broker,
  Errors,
  hasPresence,
  type Presence,
  type PresenceSnapshot,
  type PresenceUser,
} from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { json, type RouteDoc } from "../api-docs.ts";
import type { ChannelAccess } from "../auth/access.ts";
import type { Auth } from "../auth.ts";
import type { RouteLimit } from "../security/route-options.ts";

export interface PresenceRouteDeps {
  presence: Presence;
  broker: Broker;
  auth: Auth;
  access: ChannelAccess;
  /** Most users one snapshot lists; 0 = all. */
  maxUsers: number;
}

/** Reads per user. */
const limit: RouteLimit = { name: "presence", by: "identity" };

const docs: RouteDoc = {
  tag: "presence",
  summary: "Who is online in a room, with a cursor to follow changes",
  description:
    "Open `/api/events?channel=<channel>&lastEventId=<cursor>` next to get every presence change after this snapshot.",
  responses: {
    200: json("The snapshot", {
      type: "object",
      required: ["channel", "users", "total", "truncated", "version", "cursor"],
      properties: {
        channel: { type: "string" },
        users: {
          type: "array",
          description:
            "Sorted by user id; at most `PRESENCE_SNAPSHOT_MAX_USERS`, the reader always among them",
          items: {
            type: "object",
            required: ["userId", "userName", "connections"],
            properties: {
              userId: { type: "string" },
              userName: { type: "string" },
              connections: {
                type: "integer",
                minimum: 0,
                description: "Open streams in the room over every pod; 0 in the grace period",
              },
            },
          },
        },
        total: { type: "integer", minimum: 0, description: "Users online, listed or not" },
        truncated: { type: "boolean", description: "`users` leaves some out" },
        version: { type: "integer", minimum: 0 },
        cursor: { type: "string" },
      },
    }),
    400: "Bad room name, or a `user:` channel",
    401: "No valid token",
    403: "Not allowed to subscribe to the room",
    503: "Presence is unavailable (`Retry-After`)",
  },
};

export function registerPresenceRoute(app: FastifyInstance, deps: PresenceRouteDeps): void {
  const { presence, broker, auth, access, maxUsers } = deps;
  app.get(
    "/api/channels/:channel/presence",
    // No HEAD twin: it would cost a full snapshot (and, for a fresh room, a position read) with
    // nothing to show for it, outside the presence rate limit.
    {
      schema: { params: CHANNEL_PARAMS, querystring: NO_QUERY },
      exposeHeadRoute: false,
      config: { limit, docs },
    },
    async (request, reply) => {
      const channel = channelParam(request.params);
      const identity = await auth.authenticate(request);
      await access.require(identity, [channel], "subscribe");
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
      const reader = identity.kind === "user" ? identity.userId : "";
      return {
        channel,
        users: firstUsers(users, maxUsers, reader),
        total: users.length,
        truncated: maxUsers > 0 && users.length > maxUsers,
        version,
        cursor: encodeCursor([[channel, position]]),
      };
    },
  );
}

/**
 * At most `max` of `users` (sorted by id): the first ones, with `reader` in place of the last
 * when the reader is in the room but not among them, so a user always sees themselves.
 */
function firstUsers(users: PresenceUser[], max: number, reader: string): PresenceUser[] {
  if (max <= 0 || users.length <= max) return users;
  const first = users.slice(0, max);
  if (first.some((user) => user.userId === reader)) return first;
  const self = users.find((user) => user.userId === reader);
  if (!self) return first;
  // The reader sorts after every listed user (else it would be listed): last keeps the order.
  return [...first.slice(0, max - 1), self];
}
