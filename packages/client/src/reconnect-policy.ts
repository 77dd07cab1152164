/**
 * What to do after a stream is lost, decided from what the server said (a `close` code, an HTTP
 * status) without any I/O, so every row of the protocol's tables is unit-tested.
 */
import { CloseCode, shouldReconnect } from "@realtime/protocol";
import type { StateChange, StateReason } from "./connection-state.ts";

/** Why a stream ended or never started. */
export type StreamFailure =
  /** The connection dropped or ended without a `close` event (network, proxy, killed pod). */
  | { readonly kind: "transport" }
  /** The server refused the stream before it started. */
  | {
      readonly kind: "http";
      readonly status: number;
      /** The `code` of the JSON error body (`RT_ERR_…`), when it could be read. */
      readonly errorCode?: string;
      readonly message?: string;
    }
  /** The server ended the stream with a `close` control event. */
  | {
      readonly kind: "close";
      readonly code: number;
      readonly reason: string;
      /** The channels the close is about: with 3503 `forbidden`, those no longer granted. */
      readonly channels?: readonly string[];
    };

/**
 * - `retry`: reconnect after a backoff delay.
 * - `refresh`: get fresh credentials (`onTokenExpired`/`getToken`), then reconnect at once.
 * - `stop`: terminal until the app calls `connect()` (e.g. after signing in again).
 * - `stop-channels`: terminal until the channel set changes or the app calls `connect()`.
 */
export type Decision = "retry" | "refresh" | "stop" | "stop-channels";

export function decide(failure: StreamFailure): Decision {
  switch (failure.kind) {
    case "transport":
      return "retry";
    case "close":
      if (failure.code === CloseCode.TokenExpired) return "refresh";
      if (shouldReconnect(failure.code)) return "retry";
      // The range decides, so a terminal code this client does not know still stops it.
      if (failure.code >= 3500 && failure.code <= 3999) {
        return failure.code === CloseCode.Unauthorized ? "stop" : "stop-channels";
      }
      // Outside the protocol's ranges: nothing says it is final, so keep trying.
      return "retry";
    case "http":
      return decideHttp(failure.status);
  }
}

function decideHttp(status: number): Decision {
  if (status === 401) return "refresh";
  // Timeouts, rate limits and server-side trouble (503 at capacity or draining) pass.
  if (status === 408 || status === 429 || status >= 500 || status < 400) return "retry";
  // 400 bad channel, 403 another user's channel, 404 wrong URL: retrying unchanged cannot help.
  return status === 403 || status === 400 ? "stop-channels" : "stop";
}

/** The reason and the server's words a failure is reported with. */
export function describeFailure(failure: StreamFailure): {
  reason: StateReason;
  details: Omit<StateChange, "from" | "to" | "reason">;
} {
  switch (failure.kind) {
    case "transport":
      return { reason: "transport_error", details: {} };
    case "close":
      return {
        reason: "server_close",
        details: { closeCode: failure.code, message: failure.reason },
      };
    case "http":
      return {
        reason: "http_error",
        details: {
          httpStatus: failure.status,
          ...(failure.errorCode !== undefined && { errorCode: failure.errorCode }),
          ...(failure.message !== undefined && { message: failure.message }),
        },
      };
  }
}
