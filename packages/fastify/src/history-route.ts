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
 * Retention is the broker's (the service: `HISTORY_MAX_LENGTH` events and `HISTORY_TTL_SECONDS`
 * per channel, in Redis and in embedded mode). What one read costs is bounded: at most
 * {@link MAX_LIMIT} events, two broker round trips (the service rate-limits reads per user).
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
import {
  appError,
  type Broker,
  type BrokerMessage,
  Errors,
  type HistoryPage,
  type HistoryStore,
  type RealtimeUser,
} from "@realtime/server";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { CHANNEL_PARAMS, channelParam } from "./channel-param.ts";
import type { HostRouteOptions } from "./host-route-options.ts";

export interface HistoryRouteDeps<U extends RealtimeUser> {
  readonly path: string;
  readonly broker: Broker;
  /** The broker's history; a broker without one answers 503. */
  readonly history: HistoryStore | undefined;
  /** Who is asking (401 when no one); throws the refusal. */
  authenticate(request: FastifyRequest): Promise<U>;
  /** May `user` subscribe to `channel`? Throws the refusal (403). */
  requireSubscriber(user: U, channel: ChannelName, request: FastifyRequest): Promise<void>;
  readonly routeOptions?: HostRouteOptions | undefined;
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

interface HistoryAnswer {
  readonly position: StreamPosition;
  readonly messages: readonly BrokerMessage[];
  /** The offset the page ends at: `cursor`. */
  readonly end: number;
  /** Whether history holds nothing before the page. */
  readonly first: boolean;
}

export function registerHistoryRoute<U extends RealtimeUser>(
  app: FastifyInstance,
  deps: HistoryRouteDeps<U>,
): void {
  const { broker, history } = deps;
  app.get(
    deps.path,
    {
      ...deps.routeOptions,
      schema: { params: CHANNEL_PARAMS, querystring: querySchema },
      exposeHeadRoute: false,
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
      const user = await deps.authenticate(request);
      await deps.requireSubscriber(user, channel, request);
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
