/**
 * The connection's state machine, as the app observes it. Every transition carries a reason,
 * and what the server said when it caused it.
 *
 * | from           | to             | reasons                                                     |
 * | -------------- | -------------- | ----------------------------------------------------------- |
 * | `closed`       | `connecting`   | `subscribed`, `connect_called`                               |
 * | `open`         | `connecting`   | `channels_changed` (re-opens with the cursor), `history_handoff` |
 * | `connecting`   | `open`         | `opened` (also `reconnecting` → `open`)                      |
 * | `connecting`, `open` | `reconnecting` | `transport_error`, `http_error`, `server_close`, `token_expired`, `offline` |
 * | `closed`       | `reconnecting` | `offline` (subscribed while offline)                         |
 * | `reconnecting` | `reconnecting` | each failed retry, `offline`, `online`                       |
 * | any            | `closed`       | `unsubscribed`, `client_closed`, a terminal `server_close`/`http_error`, `token_refresh_failed` |
 */

/**
 * - `connecting`: opening a stream for a new channel set (first subscription, a change of
 *   channels, `connect()`).
 * - `open`: the stream is live.
 * - `reconnecting`: the stream was lost; the client waits out its backoff (or the network) and
 *   retries until a stream opens again.
 * - `closed`: no stream and none coming: no channels, `close()`, or a terminal refusal.
 */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Why a transition happened. */
export type StateReason =
  /** The first channel was subscribed. */
  | "subscribed"
  /** The channel set changed while a stream was open or opening; it re-opens with the cursor. */
  | "channels_changed"
  /**
   * A subscription started after a history page on a channel the stream carried from a later
   * position: it re-opens from the page's end, so the subscription misses nothing (the
   * channel's other subscriptions skip what they already had).
   */
  | "history_handoff"
  /**
   * The server withdrew some of the stream's channels (`close` 3503 naming them): their
   * subscriptions get `onDenied`, and the stream re-opens at once with the rest.
   */
  | "channels_denied"
  /** The app called `connect()`. */
  | "connect_called"
  /** The server accepted the stream. */
  | "opened"
  /** The connection dropped or ended without a `close` event. */
  | "transport_error"
  /** The server refused the stream with an HTTP status (`httpStatus`, `errorCode`). */
  | "http_error"
  /** The server ended the stream with a `close` event (`closeCode`). */
  | "server_close"
  /** Credentials expired (close code 3005 or HTTP 401): refreshing them, then reconnecting. */
  | "token_expired"
  /** `onTokenExpired` or `getToken` threw: stopped until `connect()`. */
  | "token_refresh_failed"
  /** The device went offline: retries pause until it is back. */
  | "offline"
  /** The device is back online: reconnecting at once. */
  | "online"
  /** The last channel was unsubscribed. */
  | "unsubscribed"
  /** The app called `close()`. */
  | "client_closed";

/** One transition of the state machine. */
export interface StateChange {
  readonly from: ConnectionState;
  readonly to: ConnectionState;
  readonly reason: StateReason;
  /** Code of the server's `close` event (e.g. 3001, 3503), for `server_close`/`token_expired`. */
  readonly closeCode?: number;
  /** HTTP status of a refused stream (e.g. 401, 503), for `http_error`/`token_expired`. */
  readonly httpStatus?: number;
  /** `code` of the server's JSON error body (`RT_ERR_…`), when it could be read. */
  readonly errorCode?: string;
  /** The server's (or the failing callback's) message, for display and logs. */
  readonly message?: string;
  /** Entering `reconnecting`: ms until the next attempt; absent while paused offline. */
  readonly delayMs?: number;
}

/** What `getSnapshot()` returns: a new object on every transition, the same one otherwise. */
export interface ConnectionSnapshot {
  readonly state: ConnectionState;
  /** The transition that led here; null before the first one. */
  readonly change: StateChange | null;
}
