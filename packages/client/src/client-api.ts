/**
 * What the framework-free client offers (`createRealtimeClient`): its options, subscriptions
 * and the {@link RealtimeClient} interface. The implementation is in realtime-client.ts.
 */
import type { ChannelName, RealtimeEvent } from "@realtime/protocol";
import type { BackoffOptions } from "./backoff.ts";
import type { ChannelHandlers } from "./channel-registry.ts";
import type { ConnectionSnapshot, ConnectionState, StateChange } from "./connection-state.ts";
import type { Connectivity } from "./connectivity.ts";
import type { EventSourceFactory, FetchLike, TokenGetter } from "./event-source.ts";
import type { HistoryOptions, HistoryPage } from "./history-page.ts";
import type { Timers } from "./timers.ts";
/** Application event types by `type`, for typed handlers. */
export type EventMap = Record<string, RealtimeEvent>;

/** Any event of an {@link EventMap}. */
export type EventOf<Events extends EventMap> = Events[keyof Events];

export interface RealtimeClientOptions {
  /**
   * Base URL of the service: `https://rt.example.com`, or `""` for the page's own origin
   * (browsers only). Required.
   */
  url: string;
  /** Path of the events route under {@link url}. Default `"/api/events"`. */
  eventsPath?: string;
  /**
   * Opens the stream. Default: the global `EventSource` (browsers; identity from the session
   * cookie), looked up at the first `subscribe()` or `connect()`, not when the client is
   * created. Node: `withBearerToken(EventSource)` with the `eventsource` package.
   */
  eventSource?: EventSourceFactory;
  /** Used by {@link RealtimeClient.request} and to read why a browser stream was refused. Default: global `fetch`. */
  fetch?: FetchLike;
  /** Timers for the reconnect delays. Default: the runtime's `setTimeout`/`clearTimeout`. */
  timers?: Timers;
  /** Jitter source, uniform in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Network up/down. Default: `navigator.onLine` and window events in browsers, always online elsewhere. */
  online?: Connectivity;
  /**
   * Returns the bearer token for the next connection or request (called before each).
   * Default: none (browsers authenticate with the HttpOnly cookie).
   */
  getToken?: TokenGetter;
  /**
   * Called when the server says the credentials expired (close code 3005, HTTP 401 once per
   * open, or a {@link RealtimeClient.request} answered 401 `RT_ERR_TOKEN_EXPIRED`): renew them
   * (e.g. refresh the session cookie, or the token `getToken` returns); the client reconnects,
   * or sends the request again, when it settles. One call at a time: every expiry met while
   * one is in flight waits for it. A rejection closes the stream (`token_refresh_failed`) and
   * rejects the requests waiting for it with the same error. Default: none.
   */
  onTokenExpired?: () => void | Promise<void>;
  /** Send cookies to a cross-origin service (EventSource `withCredentials`, fetch `credentials: "include"`). Default false. */
  withCredentials?: boolean;
  /** Reconnect delays. Default: 1 s doubling to 30 s, full jitter. */
  backoff?: BackoffOptions;
  /** Cursor to resume from on the first connection (e.g. kept in `sessionStorage`). Default: none (start from now). */
  lastEventId?: string;
}

/** What a subscription that starts from history hears about the page. */
export interface HistoryHandlers<E extends RealtimeEvent = RealtimeEvent> {
  /**
   * The page the subscription starts after (`history` option): called once, before any
   * `onEvent`; the channel's live events follow from exactly the page's end.
   */
  onHistory?(page: HistoryPage<E>): void;
  /**
   * The page could not be read (a {@link RealtimeHttpError}, a network error): the subscription
   * goes on live from now instead, so what came before is missing.
   */
  onHistoryError?(error: unknown): void;
}

/** How a subscription starts. Default: with the channel's next event. */
export interface SubscribeOptions {
  /**
   * Go on from this cursor (a history page's `cursor`) instead of from now: the subscription
   * gets exactly the channel's events after it, each once, also when the stream is open on
   * other channels or on this one already. A `reset` (history trimmed or lost meanwhile) comes
   * to `onReset`.
   */
  readonly from?: string;
  /**
   * Start with the channel's last `history` events (1–100): `onHistory` gets them as a page,
   * then `onEvent` every later event, without gap or duplicate. The stream takes the channel
   * once the page is in. Not together with `from`.
   */
  readonly history?: number;
}

/** A subscription to one channel; the stream carries the channel while any subscription exists. */
export interface Subscription {
  readonly channel: ChannelName;
  /** Stops the handlers at once; the stream drops the channel (idempotent). */
  unsubscribe(): void;
}

export interface RealtimeClient<Events extends EventMap = EventMap> {
  /** The current state. */
  readonly state: ConnectionState;
  /** The channel set of the current (or next) stream. */
  readonly channels: readonly ChannelName[];
  /** The latest cursor seen; the next stream resumes from it. Null before any. */
  readonly lastEventId: string | null;
  /** The current state and the transition that led to it (stable between transitions). */
  getSnapshot(): ConnectionSnapshot;
  /** Calls `listener` on every transition; returns a function that stops the calls. */
  onStateChange(listener: (change: StateChange) => void): () => void;
  /**
   * Subscribes to `channel` (`user:<id>` or `channel:<id>`). Changes made in one tick re-open
   * the stream once, with the current cursor. `options` starts it from a history page.
   * @throws {TypeError} when `channel` is not a valid channel name, or `from` is not a cursor
   *   of it.
   * @throws {RangeError} when `history` is not an integer ≥ 1.
   * @throws {TypeError} when there is no `eventSource` option and no global `EventSource`.
   */
  subscribe(
    channel: string,
    handlers?: ChannelHandlers<EventOf<Events>> & HistoryHandlers<EventOf<Events>>,
    options?: SubscribeOptions,
  ): Subscription;
  /**
   * A page of `channel`'s recent events, oldest first (`GET /api/channels/:channel/messages`),
   * with the cursor to go on from live (`subscribe(channel, handlers, { from: page.cursor })`)
   * and `previous` to page further back (`before`). Rejects with a `TypeError` for a bad
   * channel name and a {@link RealtimeHttpError} when the service refuses (403, 429, 503 …).
   */
  history(channel: string, options?: HistoryOptions): Promise<HistoryPage<EventOf<Events>>>;
  /** Calls `handler` with every event of `type`, on any subscribed channel. */
  on<T extends keyof Events & string>(type: T, handler: (event: Events[T]) => void): () => void;
  /** Calls `handler` with every application event, on any subscribed channel. */
  onEvent(handler: (event: EventOf<Events>) => void): () => void;
  /** Calls `handler` when the server cannot replay what a channel missed: refetch its state. */
  onReset(handler: (channel: ChannelName, reason: string) => void): () => void;
  /**
   * `fetch` against the service with the client's credentials (cookie or bearer token). When
   * the service answers 401 `RT_ERR_TOKEN_EXPIRED` and the client has `onTokenExpired` and/or
   * `getToken`, it renews them (awaits `onTokenExpired`, shared with every expiry met
   * meanwhile) and sends the request once more, with `getToken()` asked again; the second
   * answer is returned whatever it is. Not sent again: a `ReadableStream` body (spent), a
   * request whose `signal` was aborted, one whose `init.headers` has its own `authorization`
   * (the caller owns those credentials). Rejects with `onTokenExpired`'s error when it rejects.
   */
  request(path: string, init?: RequestInit): Promise<Response>;
  /**
   * Connects again after `close()` or a terminal refusal (e.g. after signing in again).
   * @throws {TypeError} when there is no `eventSource` option and no global `EventSource`.
   */
  connect(): void;
  /** Closes the stream and stays closed until `connect()`; subscriptions are kept. */
  close(): void;
}
