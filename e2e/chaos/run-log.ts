/**
 * What a chaos run records, in the checker's own terms: the events the publisher sent (named by
 * the id it wrote into their body, never by the service's offsets), what each subscriber
 * received per channel and when, and the faults with their windows. Times are milliseconds
 * since the run started, all on this process's one clock (`performance.now()`), so "the publish
 * of A was answered before B was sent" is a fact the checker can lean on.
 */

/** One logical event of the publisher: every retry of it carries the same id and key. */
export interface PublishedEvent {
  readonly id: number;
  readonly channel: string;
  /** `chat` (POST /api/chat/messages), `publish` (POST /api/publish) or `final` (the end marker). */
  readonly via: "chat" | "publish" | "final";
  /** When its first attempt was sent: the event cannot have been accepted before. */
  readonly sentAt: number;
  /** When a 2xx came back (the event was accepted before); null: no 2xx (outcome unknown). */
  ackAt: number | null;
  attempts: number;
  /** The first time any subscriber received it: it was accepted before that too. */
  firstSeenAt: number | null;
}

/**
 * One subscriber's view of one channel from a connect without a cursor (a fresh
 * `EventSource`) until the subscriber drops its cursor or the run ends. Reconnects with the
 * cursor (`Last-Event-ID` or `lastEventId`) stay in the session: a resumed stream owes exactly
 * the continuation.
 */
export interface Session {
  readonly subscriber: string;
  readonly channel: string;
  /** When the cursorless request was sent. */
  readonly requestedAt: number;
  /** When its `ready` arrived: every event first sent after it is owed. */
  readonly readyAt: number;
  /** In arrival order: event ids (≥ 0) and resets (−1 − their index in `resets`). */
  readonly items: number[];
  /** Arrival time of each item. */
  readonly times: number[];
  readonly resets: { readonly reason: string; readonly at: number }[];
  /** When the subscriber dropped its cursor (it is owed nothing after); null: open to the end. */
  endedAt: number | null;
}

/** A fault and the window it was in force (injection → recovery done). */
export interface FaultRecord {
  readonly name: string;
  readonly target: string;
  readonly start: number;
  /** When the fault was over (the process restarted and ready, the link replaced, …). */
  end: number | null;
  /** Whether Redis may have lost events it had acknowledged. */
  readonly losesData: boolean;
}

/** Everything the checker judges. */
export interface RunLog {
  readonly seed: number;
  /** By id. */
  readonly events: PublishedEvent[];
  readonly sessions: Session[];
  readonly faults: FaultRecord[];
  /** Blocks no subscriber should have received (unknown event names, ids, wrong channels). */
  readonly strays: { readonly subscriber: string; readonly at: number; readonly what: string }[];
}

/** Appends an event delivery to a session. */
export function recordEvent(session: Session, id: number, at: number): void {
  session.items.push(id);
  session.times.push(at);
}

/** Appends a `reset` to a session. */
export function recordReset(session: Session, reason: string, at: number): void {
  session.resets.push({ reason, at });
  session.items.push(-session.resets.length);
  session.times.push(at);
}

/** `t=12.345s`, for reports. */
export function seconds(ms: number): string {
  return `t=${(ms / 1000).toFixed(3)}s`;
}
