/**
 * `GET /api/channels/:channel/messages?limit=50&before=<cursor>` → `{ channel, events: [{ id,
 * event }], cursor, previous, reset? }`: the last events of a channel, oldest first, for whoever
 * may subscribe to it — what a person who opens a room sees of what was said before.
 *
 * The handoff to the stream is exact: `cursor` is the channel's position right after the last
 * event of the page, so `/api/events?channel=<channel>&lastEventId=<cursor>` replays what was
 * published since the read and then goes live — no gap, no duplicate. Each event's `id` is the
 * SSE `id:` a stream on that one channel carries for it.
 *
 * Older pages: `before=<previous>` returns the events just before it (and `cursor` at that
 * page's end). `previous` is null when history holds nothing older (the channel's first event,
 * or retention trimmed the rest). A `before` from a history that is gone (Redis restarted
 * empty: a new epoch) answers `reset: "epoch_changed"` with no events and the current cursor.
 *
 * Retention is `HISTORY_MAX_LENGTH` events and `HISTORY_TTL_SECONDS` per channel, in Redis and in
 * embedded mode (there also `HISTORY_MAX_BYTES` over all channels). What one read costs is
 * bounded: at most {@link MAX_LIMIT} events, two broker round trips, rate-limited per user.
 */
import {
  type ChannelName,
  channelTag,
  cursorEntry,
  decodeCursor,
  encodeCursor,
  epochTag,
  joinCursor,
  lookupCursor,
  ResetReason,
  type StreamPosition,
} from "@realtime/protocol";
import type { Broker, BrokerMessage, HistoryPage, HistoryStore } from "@realtime/server";
import { appError, Errors } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { json, type RouteDoc } from "../api-docs.ts";
import type { ChannelAccess } from "../auth/access.ts";
import type { Auth } from "../auth.ts";
import type { RouteLimit } from "../security/route-options.ts";
import { CHANNEL_PARAMS, channelParam } from "./channel-param.ts";

export interface HistoryRouteDeps {
  broker: Broker;
  /** The broker's history; a broker without one answers 503. */
  history: HistoryStore | undefined;
  auth: Auth;
  access: ChannelAccess;
}

/** Events per page when `limit` is not given. */
export const DEFAULT_LIMIT = 50;
/** Most events per page; a larger `limit` is capped to it. */
export const MAX_LIMIT = 100;
/** Reads of position and history that may disagree on the epoch (Redis restarting) before 503. */
const ATTEMPTS = 3;

const querySchema = {
  type: "object",
  properties: {
    // Query values are not coerced (AJV_OPTIONS): a positive decimal, parsed below.
    limit: { type: "string", pattern: "^[1-9][0-9]{0,9}$" },
    before: { type: "string", minLength: 1, maxLength: 4096 },
  },
  additionalProperties: false,
} as const;

/** Reads per user. */
const limit: RouteLimit = { name: "history", by: "identity" };

const docs: RouteDoc = {
  tag: "streams",
  summary: "A channel's recent events, with the cursor to continue live from",
  description:
    "Oldest first. Open `/api/events?channel=<channel>&lastEventId=<cursor>` next: it continues exactly after the page. `before=<previous>` pages further back. `limit` defaults to 50 and is capped at 100.",
  responses: {
    200: json("A page of history", {
      type: "object",
      required: ["channel", "events", "cursor", "previous"],
      properties: {
        channel: { type: "string" },
        events: {
          type: "array",
          items: {
            type: "object",
            properties: {
              id: { type: "string", description: "The event's SSE id on a stream of this channel" },
              event: { type: "object" },
            },
          },
        },
        cursor: { type: "string" },
        previous: { type: ["string", "null"] },
        reset: { type: "string", enum: [ResetReason.EpochChanged] },
      },
    }),
    400: "Bad channel name, `limit` or `before`",
    401: "No valid token",
    403: "Not allowed to subscribe to the channel",
    503: "History is unavailable (`Retry-After`)",
  },
};

interface HistoryAnswer {
  readonly position: StreamPosition;
  readonly messages: readonly BrokerMessage[];
  /** The offset the page ends at: `cursor`. */
  readonly end: number;
  /** Whether history holds nothing before the page. */
  readonly first: boolean;
}

export function registerHistoryRoute(app: FastifyInstance, deps: HistoryRouteDeps): void {
  const { broker, history, auth, access } = deps;
  app.get(
    "/api/channels/:channel/messages",
    {
      schema: { params: CHANNEL_PARAMS, querystring: querySchema },
      exposeHeadRoute: false,
      config: { limit, docs },
    },
    async (request, reply) => {
      const query = request.query as { limit?: string; before?: string };
      const channel = channelParam(request.params);
      const before = query.before === undefined ? null : decodeCursor(query.before);
      if (before === null && query.before !== undefined) {
        throw appError(Errors.BAD_REQUEST, "before must be a cursor from an earlier answer");
      }
      if (before !== null && !before.entries.has(channelTag(channel))) {
        throw appError(Errors.BAD_REQUEST, `before is not a cursor of ${channel}`);
      }
      const count = Math.min(
        query.limit === undefined ? DEFAULT_LIMIT : Number(query.limit),
        MAX_LIMIT,
      );
      const identity = await auth.authenticate(request);
      await access.require(identity, [channel], "subscribe");
      if (history === undefined) {
        throw appError(Errors.BROKER_UNAVAILABLE, "this broker keeps no history");
      }

      let answer: HistoryAnswer | "epoch_changed" | null = null;
      let position: StreamPosition | undefined;
      try {
        for (let attempt = 0; answer === null && attempt < ATTEMPTS; attempt++) {
          // Position first, as a stream open does: it starts the channel's epoch if it has none,
          // so even an empty room's cursor resumes (and sees its first event).
          position = await broker.position(channel);
          let end = position.offset;
          if (before !== null) {
            const found = lookupCursor(before, channel, position.epoch);
            if (found.kind !== "position") {
              answer = "epoch_changed";
              break;
            }
            end = Math.max(0, Math.min(found.offset - 1, position.offset));
          }
          answer = await readPage(history, channel, position, end, count);
        }
      } catch (error) {
        request.log.warn({ err: error }, "history read failed");
        throw unavailable();
      }
      if (answer === null || position === undefined) throw unavailable();
      reply.header("cache-control", "no-store");
      const atTop = encodeCursor([[channel, position]]);
      if (answer === "epoch_changed") {
        return {
          channel,
          events: [],
          cursor: atTop,
          previous: null,
          reset: ResetReason.EpochChanged,
        };
      }
      const prefix = channelTag(channel) + epochTag(answer.position.epoch);
      const idOf = (offset: number) => joinCursor([cursorEntry(prefix, offset)]);
      // The events' data is the JSON text they were published as: spliced in, not re-parsed.
      const events = answer.messages.map(
        (m) => `{"id":${JSON.stringify(idOf(m.offset))},"event":${m.data}}`,
      );
      const oldest = answer.messages[0];
      const previous = answer.first || oldest === undefined ? null : idOf(oldest.offset);
      reply.type("application/json; charset=utf-8");
      return `{"channel":${JSON.stringify(channel)},"events":[${events.join(",")}],"cursor":${JSON.stringify(idOf(answer.end))},"previous":${JSON.stringify(previous)}}`;
    },
  );
}

function unavailable() {
  return appError(Errors.BROKER_UNAVAILABLE, "history is unavailable; try again", {
    "Retry-After": "1",
  });
}

/**
 * The last `count` retained events of `channel` at or before `end`, read in one step of the
 * store (events, epoch and top together). Null when the store answered from another epoch
 * than `position` (its history was lost between the two reads): the caller reads again.
 */
async function readPage(
  history: HistoryStore,
  channel: ChannelName,
  position: StreamPosition,
  end: number,
  count: number,
): Promise<HistoryAnswer | null> {
  const after = Math.max(0, end - count);
  const page: HistoryPage = await history.read(channel, after, count);
  if (page.epoch !== position.epoch) return null;
  const messages = page.messages.filter((m) => m.offset > after && m.offset <= end);
  const oldest = messages[0];
  return {
    position,
    messages,
    end,
    // Retention trims from the front: a page that does not start where asked has nothing
    // older, nor does one that reaches the channel's first event.
    first: oldest === undefined || oldest.offset === 1 || oldest.offset !== after + 1,
  };
}
