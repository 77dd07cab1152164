/**
 * Close codes sent in the `close` control event before the server ends a stream.
 *
 * The numeric range tells a client what to do, so a client that does not know a specific
 * code still behaves correctly:
 * - 3000–3499: transient. Reconnect with backoff and resume from the last cursor.
 * - 3500–3999: terminal. Do not reconnect until something changes (new credentials, new
 *   channel set).
 */
export const CloseCode = {
  /** The server is shutting down or draining; reconnect (ideally to another pod). */
  Shutdown: 3001,
  /** An unexpected server error ended the stream; reconnect. */
  ServerError: 3002,
  /** The token expired; obtain a fresh token, then reconnect. */
  TokenExpired: 3005,
  /** The client did not read fast enough and its send queue hit its bound; reconnect. */
  Slow: 3008,
  /** The server cannot vouch for the stream's continuity; reconnect and resume. */
  InsufficientState: 3010,
  /** The request was malformed (a bad channel name, too many channels); do not retry it unchanged. */
  BadRequest: 3500,
  /** The credentials were missing or invalid; do not retry without new ones. */
  Unauthorized: 3501,
  /** A channel is not allowed for this user; do not retry the same channel set. */
  Forbidden: 3503,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Reason strings that go with each close code (stable; clients may switch on them). */
export const CloseReason: Readonly<Record<CloseCode, string>> = {
  [CloseCode.Shutdown]: "shutdown",
  [CloseCode.ServerError]: "server_error",
  [CloseCode.TokenExpired]: "token_expired",
  [CloseCode.Slow]: "slow",
  [CloseCode.InsufficientState]: "insufficient_state",
  [CloseCode.BadRequest]: "bad_request",
  [CloseCode.Unauthorized]: "unauthorized",
  [CloseCode.Forbidden]: "forbidden",
};

/** Whether a client should reconnect after a stream closed with `code`. */
export function shouldReconnect(code: number): boolean {
  return code >= 3000 && code < 3500;
}
