/** Maps the hub's refusals onto the error catalogue. */
import { ChannelCapacityError, HubError } from "@realtime/server";
import { AppError, appError, Errors } from "./errors.ts";

/** What the client asked the hub for: the message of a broker failure says which failed. */
export type HubAction = "publish" | "open";

const UNAVAILABLE: Readonly<Record<HubAction, string>> = {
  publish: "The event could not be published: the broker is unavailable; try again",
  open: "The stream could not be opened: the broker is unavailable; try again",
};

/**
 * The {@link AppError} for `error`, raised while doing `action`: catalogue errors pass through,
 * hub refusals become 503, 413 or 422; anything else is rethrown for the generic 500 handler.
 */
export function toAppError(error: unknown, action: HubAction): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof HubError) {
    switch (error.code) {
      case "at_capacity":
        return appError(
          Errors.AT_CAPACITY,
          error.cause instanceof ChannelCapacityError
            ? "The server holds its maximum number of channels, all in use; try again later"
            : undefined,
          { "Retry-After": retryAfterSeconds() },
        );
      case "shutting_down":
        return appError(Errors.SHUTTING_DOWN, undefined, { "Retry-After": retryAfterSeconds() });
      case "too_large":
        return appError(Errors.PAYLOAD_TOO_LARGE, error.message);
      case "idempotency_conflict":
        return appError(Errors.IDEMPOTENCY_KEY_REUSED);
      default:
        return appError(Errors.BROKER_UNAVAILABLE, UNAVAILABLE[action], { "Retry-After": "1" });
    }
  }
  throw error;
}

/** 1–10 s, random, so refused clients do not all come back at once. */
function retryAfterSeconds(): string {
  return String(1 + Math.floor(Math.random() * 10));
}
