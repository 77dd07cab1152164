/** Refusals of the hub and the publisher, and the shape of an event a publisher hands in. */
import type { RealtimeEvent } from "@realtime/protocol";

export type HubErrorCode =
  | "at_capacity"
  | "shutting_down"
  | "broker_unavailable"
  | "too_large"
  | "idempotency_conflict";

/** A refusal the caller can map to an HTTP status. */
export class HubError extends Error {
  readonly code: HubErrorCode;
  constructor(code: HubErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HubError";
    this.code = code;
  }
}

/** An event as a publisher gives it: the hub adds `channel` and `timestamp`. */
export type EventInput = { type: string } & Omit<
  Partial<RealtimeEvent>,
  "channel" | "timestamp" | "type"
>;
