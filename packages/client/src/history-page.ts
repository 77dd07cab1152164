/**
 * A channel's recent events from the service (`GET /api/channels/:channel/messages`): what a
 * person who opens a room sees of what was said before, and the cursor the stream goes on from.
 */
import { type ChannelName, decodeCursor, type RealtimeEvent } from "@realtime/protocol";
import { RealtimeHttpError } from "./realtime-http-error.ts";

/** Most events one page holds; the service caps `limit` to it. */
export const MAX_HISTORY_LIMIT = 100;

/** One event of a history page. */
export interface HistoryEvent<E extends RealtimeEvent = RealtimeEvent> {
  /**
   * The event's id on its channel: the SSE `id:` a stream of that channel alone carries for it,
   * and what `onEvent` gets as its `id`. Usable as `before`.
   */
  readonly id: string;
  readonly event: E;
}

/** A page of a channel's history, oldest event first. */
export interface HistoryPage<E extends RealtimeEvent = RealtimeEvent> {
  /** The canonical channel name, e.g. `channel:general`. */
  readonly channel: ChannelName;
  /** At most `limit` events, oldest first; every event type of the channel (presence too). */
  readonly events: readonly HistoryEvent<E>[];
  /**
   * The channel's position right after the page: `subscribe(channel, handlers, { from: cursor })`
   * goes on from exactly there, without gap or duplicate.
   */
  readonly cursor: string;
  /** `before` for the next older page; null when history holds nothing older. */
  readonly previous: string | null;
  /**
   * `epoch_changed`: `before` came from a history that no longer exists (the service's Redis
   * restarted empty); `events` is empty and `cursor` is the channel's current position.
   */
  readonly reset?: "epoch_changed";
}

export interface HistoryOptions {
  /** Events per page, 1–100 (the service caps larger values). Default: the service's, 50. */
  readonly limit?: number;
  /** A page's `previous` (or an event's `id`): the page of events just before it. */
  readonly before?: string;
  /** Cancels the request (it then rejects with an `AbortError`). */
  readonly signal?: AbortSignal;
}

/**
 * Requests one page through `request` (the client's authenticated fetch).
 * @throws {RangeError} for a `limit` that is not an integer ≥ 1.
 * @throws {RealtimeHttpError} when the service refuses (403 not allowed, 429, 503 …).
 * @throws {TypeError} when the answer is not a history page.
 */
export async function readHistoryPage<E extends RealtimeEvent>(
  request: (path: string, init: RequestInit) => Promise<Response>,
  channel: ChannelName,
  options: HistoryOptions,
): Promise<HistoryPage<E>> {
  const query = new URLSearchParams();
  if (options.limit !== undefined) {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new RangeError(`history limit must be an integer ≥ 1, got ${options.limit}`);
    }
    query.set("limit", String(Math.min(options.limit, MAX_HISTORY_LIMIT)));
  }
  if (options.before !== undefined) query.set("before", options.before);
  const search = query.toString() === "" ? "" : `?${query}`;
  const response = await request(`/api/channels/${encodeURIComponent(channel)}/messages${search}`, {
    headers: { accept: "application/json" },
    ...(options.signal && { signal: options.signal }),
  });
  if (!response.ok) throw await RealtimeHttpError.from(response);
  const page = parsePage<E>(await response.json());
  if (!page) throw new TypeError(`the history of ${channel} has an unknown shape`);
  return page;
}

function parsePage<E extends RealtimeEvent>(body: unknown): HistoryPage<E> | null {
  if (typeof body !== "object" || body === null) return null;
  const { channel, events, cursor, previous, reset } = body as Record<string, unknown>;
  if (typeof channel !== "string" || !Array.isArray(events)) return null;
  if (typeof cursor !== "string" || decodeCursor(cursor) === null) return null;
  if (previous !== null && typeof previous !== "string") return null;
  const parsed: HistoryEvent<E>[] = [];
  for (const item of events as unknown[]) {
    const { id, event } = (item ?? {}) as { id?: unknown; event?: unknown };
    if (typeof id !== "string" || typeof event !== "object" || event === null) return null;
    const { type, channel: of } = event as Record<string, unknown>;
    // As on the stream: what is not an application event of this channel is not handed on.
    if (typeof type !== "string" || of !== channel) continue;
    parsed.push({ id, event: event as E });
  }
  return {
    channel: channel as ChannelName,
    events: parsed,
    cursor,
    previous,
    ...(reset === "epoch_changed" && { reset }),
  };
}
