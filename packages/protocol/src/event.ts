/**
 * The event envelope: small JSON objects, one per SSE message. Send ids, never large
 * payloads (fetch the data separately).
 */
import type { ChannelName } from "./channel.ts";

/**
 * Every event carries `type`, `channel` and `timestamp`; the rest depends on the type.
 * The optional fields are the ones the spec's patterns use (chat, job progress, presence).
 */
export interface RealtimeEvent {
  /** What happened, e.g. `chat`, `presence`, `generation_progress`. See {@link EVENT_TYPE_PATTERN}. */
  type: string;
  /** The channel the event was published on. Set by the server. */
  channel: ChannelName;
  /** ISO-8601 UTC time at which the server accepted the event. Set by the server. */
  timestamp: string;
  /** The acting user, taken from a verified token, never from client input. */
  userId?: string;
  userName?: string;
  content?: string;
  jobId?: string;
  progress?: number;
  message?: string;
  status?: string;
  result?: unknown;
  code?: string;
  [field: string]: unknown;
}

/** Application event types: lower-case ASCII word characters, starting with a letter. */
export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;

/** Largest serialised event, in bytes of UTF-8 JSON. Events carry ids, not payloads. */
export const MAX_EVENT_BYTES = 16 * 1024;

/**
 * SSE `event:` names the server uses for its own control messages. Application events are
 * sent without an `event:` field (so `EventSource.onmessage` sees them and reads `type` from
 * the JSON), and may not use these type names either, to keep the two apart everywhere.
 */
export const ControlEvent = {
  /**
   * First event of every stream: its `id:` is the starting cursor (so a client that
   * reconnects before any other event still resumes from here), its data the channel set.
   */
  Ready: "ready",
  /** The stream could not replay a channel's missed events; refetch that channel's state. */
  Reset: "reset",
  /** The server is about to end the stream; the data says why and whether to reconnect. */
  Close: "close",
} as const;

export type ControlEvent = (typeof ControlEvent)[keyof typeof ControlEvent];

const RESERVED_TYPES: ReadonlySet<string> = new Set([
  ControlEvent.Ready,
  ControlEvent.Reset,
  ControlEvent.Close,
  "message",
  "error",
  "open",
]);

/** Data of the `ready` control event. */
export interface ReadyEvent {
  type: "ready";
  channels: ChannelName[];
  timestamp: string;
}

/** Data of the `reset` control event. */
/**
 * Why a channel of a stream was reset: `trimmed` (history no longer holds what the cursor
 * needs), `epoch_changed` (the channel's history was lost or released), `unknown_cursor` (the
 * cursor is not ours, or ahead of the channel), `gap` (the pod could not fill a hole in the
 * live sequence).
 */
export const ResetReason = {
  Trimmed: "trimmed",
  EpochChanged: "epoch_changed",
  UnknownCursor: "unknown_cursor",
  Gap: "gap",
} as const;

export type ResetReason = (typeof ResetReason)[keyof typeof ResetReason];

/**
 * The application event types this server emits (`type` of an event's JSON), one row each in
 * docs/channels.md ("Event types"; `event-types.test.ts` keeps the two in step). The publish
 * API lets a backend send any other type that passes {@link validateEventType}.
 */
export const EventType = {
  /** A chat message in a room (`POST /api/chat/messages`). */
  Chat: "chat",
  /** A user's first connection to a room opened, or their last one is gone. */
  Presence: "presence",
  /** A job's measured progress rose (or an attempt started). */
  GenerationProgress: "generation_progress",
  /** A job's result is stored. */
  GenerationComplete: "generation_complete",
  /** A job failed for good. */
  GenerationFailed: "generation_failed",
  /** A job was cancelled. */
  GenerationCancelled: "generation_cancelled",
} as const;

export type EventType = (typeof EventType)[keyof typeof EventType];

export interface ResetEvent {
  type: "reset";
  channel: ChannelName;
  /**
   * Why the channel was reset: one of {@link ResetReason} (a string, so a client keeps
   * working when a later server adds one).
   */
  reason: string;
  timestamp: string;
}

/** Data of the `close` control event. */
export interface CloseEvent {
  type: "close";
  code: number;
  reason: string;
  /** The channels the close is about: with 3503 `forbidden`, those no longer granted. */
  channels?: ChannelName[];
  timestamp: string;
}

/** Checks an application event type; returns a reason or null. */
export function validateEventType(type: unknown): string | null {
  if (typeof type !== "string") return "type must be a string";
  if (!EVENT_TYPE_PATTERN.test(type)) return "type must match ^[a-z][a-z0-9_.-]{0,63}$";
  if (RESERVED_TYPES.has(type)) return `type "${type}" is reserved for control events`;
  return null;
}

/** The current time as the envelope wants it. */
export function nowTimestamp(now: number = Date.now()): string {
  // Events come in bursts within one millisecond: format each millisecond once.
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}

let lastMs = Number.NaN;
let lastIso = "";

/** Field names an event may carry besides `type`: identifiers, so they read well in any language. */
export const EVENT_FIELD_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** Most fields one event may carry. */
export const MAX_EVENT_FIELDS = 32;

/**
 * Deepest nesting of objects and arrays in an event, the event itself being level 1. Events
 * carry ids, not documents; and serialising, fingerprinting (idempotency) and parsing are
 * recursive in places (`JSON.stringify` overflows the stack near depth 5,000, which 10 KB of
 * `[` reach), so depth is bounded where the input is checked.
 */
export const MAX_EVENT_DEPTH = 32;

/** Fields the server sets itself; a publisher may not supply them. */
const SERVER_FIELDS: ReadonlySet<string> = new Set(["channel", "timestamp"]);

/**
 * Checks an event as a publisher hands it in (before the server adds `channel` and
 * `timestamp`): a plain object with a valid `type`, identifier field names, JSON values only,
 * nested at most {@link MAX_EVENT_DEPTH} deep. Size is checked after serialisation
 * ({@link MAX_EVENT_BYTES}). Returns a reason or null.
 */
export function validateEventInput(input: unknown): string | null {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return "event must be a JSON object";
  }
  const record = input as Record<string, unknown>;
  const typeProblem = validateEventType(record.type);
  if (typeProblem) return typeProblem;
  const keys = Object.keys(record);
  if (keys.length > MAX_EVENT_FIELDS) return `event has more than ${MAX_EVENT_FIELDS} fields`;
  for (const key of keys) {
    if (SERVER_FIELDS.has(key)) return `event field "${key}" is set by the server`;
    if (!EVENT_FIELD_PATTERN.test(key))
      return "event field names must match ^[A-Za-z][A-Za-z0-9_]{0,63}$";
  }
  if (depthExceeds(record, MAX_EVENT_DEPTH)) {
    return `event is nested deeper than ${MAX_EVENT_DEPTH} levels of objects and arrays`;
  }
  return null;
}

/**
 * Whether `root` nests objects and arrays more than `max` levels deep (`root` is level 1).
 * Iterative, so the check itself cannot overflow the stack it protects; it stops at the first
 * container past `max`, and visits each value once.
 */
function depthExceeds(root: object, max: number): boolean {
  const stack: [value: object, depth: number][] = [[root, 1]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [value, depth] = next;
    for (const child of Object.values(value)) {
      if (typeof child !== "object" || child === null) continue;
      if (depth + 1 > max) return true;
      stack.push([child, depth + 1]);
    }
  }
  return false;
}
