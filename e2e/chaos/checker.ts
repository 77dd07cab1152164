/**
 * The chaos run's verdict, from its {@link RunLog} alone: no code of the service, no offsets,
 * only the publisher's ids and this process's clock.
 *
 * What is known about an event's place in its channel: it was accepted after its first attempt
 * was sent (`lo`) and before its 2xx came back or any subscriber received it (`hi`). So when
 * `hi(a) < lo(b)`, a is before b in the channel, for every subscriber — the only order the
 * checker asserts from the clock. Concurrent events (overlapping windows) may be in either
 * order, but every subscriber must see the same one: the successor check compares them.
 *
 * For each session (one subscriber, one channel, see {@link Session}) and each event e of the
 * channel that was accepted (a 2xx, or seen by anyone):
 * - e is **owed** when the session is known to have been subscribed before it — e was first
 *   sent after the session's `ready`, or after the acceptance of an event the session received —
 *   and after it — the session received an event sent after e's acceptance, or lasted to the
 *   end of the run (which waits for a final event on every channel).
 * - An owed e must be received exactly once, between those two; if it was not received, a
 *   `reset` of the channel must lie between them (the stream said it could not vouch for that
 *   stretch). Otherwise: a **loss**. Out of its place: a **reorder**. Twice: a **duplicate**
 *   (unless a reset lies between the copies and Redis lost data while the event was being
 *   retried: the key that made the retry idempotent was lost with it).
 * - An event whose outcome the publisher never learnt (no 2xx) is judged like any other once
 *   some subscriber received it; received by nobody, it is not owed — but never more than once.
 * - A `reset` is **false** unless Redis may have lost data between the session's last event
 *   before it and the reset, or that event was older than the history keeps (`HISTORY_TTL`).
 */

import { acceptedBy, afterLoss, EXEMPT, lossesSeen } from "./losses.ts";
import type { FaultRecord, PublishedEvent, RunLog, Session } from "./run-log.ts";
import { seconds } from "./run-log.ts";

/**
 * A cursor older than this may have outlived its history (5 minutes after a channel's last
 * publish) or its channel (`CHANNEL_IDLE_TTL_MS`, 10 minutes by default): a reset after it is
 * never counted as false. A chaos run publishes on every channel all the time, so this only
 * matters for a subscriber that stayed away this long.
 */
const HISTORY_TTL_MS = 240_000;

export type ViolationKind =
  | "loss"
  | "duplicate"
  | "reorder"
  | "disagreement"
  | "false-reset"
  | "stray";

export interface Violation {
  readonly kind: ViolationKind;
  readonly subscriber: string;
  readonly channel: string;
  /** The event(s) at fault: the lost, duplicated or misplaced one first. */
  readonly eventIds: readonly number[];
  /** The stretch of the run it concerns (ms). */
  readonly from: number;
  readonly to: number;
  readonly detail: string;
  /** The faults in force during that stretch. */
  readonly faults: readonly string[];
}

export interface Verdict {
  readonly violations: readonly Violation[];
  readonly losses: number;
  readonly duplicates: number;
  readonly reorders: number;
  readonly falseResets: number;
  readonly strays: number;
  /** Owed events not received but covered by a reset. */
  readonly covered: number;
  /** Copies set aside because they arrived after Redis lost data while in flight (`afterLoss`). */
  readonly republished: number;
  /** Events received (every copy, every session). */
  readonly deliveries: number;
  readonly resets: number;
}

export function check(log: RunLog): Verdict {
  const violations: Violation[] = [];
  const counts = { covered: 0, republished: 0, deliveries: 0, resets: 0 };
  const byChannel = new Map<string, PublishedEvent[]>();
  for (const event of log.events) {
    const list = byChannel.get(event.channel) ?? [];
    list.push(event);
    byChannel.set(event.channel, list);
  }
  for (const list of byChannel.values()) list.sort((a, b) => a.sentAt - b.sentAt);
  const inForce = (from: number, to: number) => faultsIn(log.faults, from, to);
  for (const session of log.sessions) {
    counts.resets += session.resets.length;
    for (const id of session.items) if (id >= 0) counts.deliveries++;
    checkSession(log, session, byChannel.get(session.channel) ?? [], violations, counts, inForce);
    checkResets(log, session, violations, inForce);
  }
  checkAgreement(log, violations, inForce);
  for (const stray of log.strays) {
    violations.push({
      kind: "stray",
      subscriber: stray.subscriber,
      channel: "",
      eventIds: [],
      from: stray.at,
      to: stray.at,
      detail: stray.what,
      faults: inForce(stray.at, stray.at),
    });
  }
  const count = (kind: ViolationKind) => violations.filter((v) => v.kind === kind).length;
  return {
    violations,
    losses: count("loss"),
    duplicates: count("duplicate"),
    reorders: count("reorder") + count("disagreement"),
    falseResets: count("false-reset"),
    strays: count("stray"),
    ...counts,
  };
}

function checkSession(
  log: RunLog,
  session: Session,
  events: readonly PublishedEvent[],
  violations: Violation[],
  counts: { covered: number; republished: number },
  inForce: (from: number, to: number) => string[],
): void {
  const { times } = session;
  // Copies that arrived after Redis lost data while their event was in flight are set aside
  // (their place is anyone's guess: see `afterLoss`); they neither count nor constrain.
  const losses = lossesSeen(log, session);
  const items = session.items.map((id, i) =>
    id >= 0 &&
    afterLoss(losses, session, log.events[id] as PublishedEvent, i, times[i] as number, log.faults)
      ? EXEMPT
      : id,
  );
  for (const id of items) if (id === EXEMPT) counts.republished++;
  const n = items.length;
  // For item i: its event's acceptance bounds (resets constrain nothing).
  const suffixMinHi = new Float64Array(n + 1).fill(Infinity);
  const prefixMaxLo = new Float64Array(n).fill(-Infinity);
  const positions = new Map<number, number[]>();
  const resetAt: number[] = [];
  for (let i = n - 1; i >= 0; i--) {
    const id = items[i] as number;
    const hi = id >= 0 ? acceptedBy(log.events[id] as PublishedEvent, log.faults) : Infinity;
    suffixMinHi[i] = Math.min(hi, suffixMinHi[i + 1] as number);
  }
  for (let i = 0; i < n; i++) {
    const id = items[i] as number;
    const lo = id >= 0 ? (log.events[id] as PublishedEvent).sentAt : -Infinity;
    prefixMaxLo[i] = Math.max(lo, i > 0 ? (prefixMaxLo[i - 1] as number) : -Infinity);
    if (id === EXEMPT) continue;
    if (id < 0) resetAt.push(i);
    else {
      const list = positions.get(id);
      if (list) list.push(i);
      else positions.set(id, [i]);
    }
  }
  const openToEnd = session.endedAt === null;
  const lastAt = n > 0 ? (times[n - 1] as number) : session.readyAt;
  const candidates = new Set<PublishedEvent>();
  for (const event of events) {
    if (event.sentAt < session.requestedAt) continue;
    if (!openToEnd && event.sentAt > lastAt) break;
    candidates.add(event);
  }
  for (const id of positions.keys()) candidates.add(log.events[id] as PublishedEvent);

  const where = (i: number) =>
    i < 0 ? "the session's start" : i >= n ? "the run's end" : `e${describeItem(session, i)}`;
  for (const event of candidates) {
    const hiAccepted = acceptedBy(event, log.faults);
    // lo: the last item known to come before the event (−1: the session's start).
    let lo = event.sentAt > session.readyAt ? -1 : undefined;
    const before = lastIndexBelow(suffixMinHi, n, event.sentAt);
    if (before >= 0 && (lo === undefined || before > lo)) lo = before;
    // hi: the first item known to come after it (n: the end, for a session open to the end).
    let hi: number | undefined = firstIndexAbove(prefixMaxLo, hiAccepted);
    if (hi === undefined && openToEnd && hiAccepted !== Infinity) hi = n;
    const seen = positions.get(event.id) ?? [];
    const from = event.sentAt;
    const to = hi !== undefined && hi < n ? (times[hi] as number) : (times[n - 1] ?? lastAt);
    if (seen.length === 0) {
      if (hiAccepted === Infinity || lo === undefined || hi === undefined) continue;
      const lower = lo;
      const upper = hi;
      if (resetAt.some((r) => r > lower && r < upper)) {
        counts.covered++;
        continue;
      }
      violations.push({
        kind: "loss",
        subscriber: session.subscriber,
        channel: session.channel,
        eventIds: [event.id],
        from,
        to,
        detail:
          `e${event.id} (${event.via}, sent ${seconds(event.sentAt)}, ` +
          `${event.ackAt === null ? "no 2xx" : `accepted ${seconds(event.ackAt)}`}) never arrived ` +
          `between ${where(lo)} and ${where(hi)}, and no reset in between`,
        faults: inForce(from, to),
      });
      continue;
    }
    for (const p of seen) {
      const early = lo !== undefined && p <= lo;
      const late = hi !== undefined && p >= hi;
      if (!early && !late) continue;
      violations.push({
        kind: "reorder",
        subscriber: session.subscriber,
        channel: session.channel,
        eventIds: [event.id, items[early ? (lo as number) : (hi as number)] as number],
        from,
        to: times[p] as number,
        detail: early
          ? `e${event.id} (sent ${seconds(event.sentAt)}) arrived at ${seconds(times[p] as number)} before ${where(lo as number)}, which was accepted before e${event.id} was sent`
          : `e${event.id} (accepted by ${seconds(hiAccepted)}) arrived at ${seconds(times[p] as number)} after ${where(hi as number)}, which was sent after e${event.id} was accepted`,
        faults: inForce(from, times[p] as number),
      });
      break;
    }
    for (let k = 1; k < seen.length; k++) {
      const first = seen[k - 1] as number;
      const again = seen[k] as number;
      violations.push({
        kind: "duplicate",
        subscriber: session.subscriber,
        channel: session.channel,
        eventIds: [event.id],
        from: times[first] as number,
        to: times[again] as number,
        detail: `e${event.id} (${event.via}, ${event.attempts} attempt(s)) arrived at ${seconds(times[first] as number)} and again at ${seconds(times[again] as number)}`,
        faults: inForce(times[first] as number, times[again] as number),
      });
    }
  }
}

/** The largest i < n with min(hi[i..]) < x, i.e. the last item accepted before x; −1 if none. */
function lastIndexBelow(suffixMinHi: Float64Array, n: number, x: number): number {
  let low = 0;
  let high = n; // suffixMinHi is non-decreasing: find the first index where it is ≥ x
  while (low < high) {
    const mid = (low + high) >> 1;
    if ((suffixMinHi[mid] as number) < x) low = mid + 1;
    else high = mid;
  }
  return low - 1;
}

/** The smallest i with max(lo[..i]) > x, i.e. the first item sent after x; undefined if none. */
function firstIndexAbove(prefixMaxLo: Float64Array, x: number): number | undefined {
  let low = 0;
  let high = prefixMaxLo.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if ((prefixMaxLo[mid] as number) > x) high = mid;
    else low = mid + 1;
  }
  return low < prefixMaxLo.length ? low : undefined;
}

function describeItem(session: Session, i: number): string {
  const id = session.items[i] as number;
  return id >= 0 ? `${id} (arrived ${seconds(session.times[i] as number)})` : "?";
}

function checkResets(
  log: RunLog,
  session: Session,
  violations: Violation[],
  inForce: (from: number, to: number) => string[],
): void {
  let since = session.requestedAt;
  let lastId: number | null = null;
  for (let i = 0; i < session.items.length; i++) {
    const id = session.items[i] as number;
    if (id >= 0) {
      since = (log.events[id] as PublishedEvent).sentAt;
      lastId = id;
      continue;
    }
    const reset = session.resets[-id - 1] as { reason: string; at: number };
    const dataLost = log.faults.some(
      (f) => f.losesData && f.start <= reset.at && (f.end ?? Infinity) >= since,
    );
    if (dataLost || reset.at - since >= HISTORY_TTL_MS) continue;
    violations.push({
      kind: "false-reset",
      subscriber: session.subscriber,
      channel: session.channel,
      eventIds: lastId === null ? [] : [lastId],
      from: since,
      to: reset.at,
      detail: `reset (${reset.reason}) at ${seconds(reset.at)} though Redis lost nothing since ${lastId === null ? "the session started" : `e${lastId} (sent ${seconds(since)})`}: history still held every event after it`,
      faults: inForce(since, reset.at),
    });
  }
}

/**
 * Every subscriber must see a channel's events in one order: an event received right after A
 * by one session (no reset between) must be what every other session received right after A.
 * This catches what the clock cannot: concurrent events in two orders, or one skipped by a
 * subscriber although its publisher never heard back.
 */
function checkAgreement(
  log: RunLog,
  violations: Violation[],
  inForce: (from: number, to: number) => string[],
): void {
  const next = new Map<string, Map<number, { id: number; session: Session; at: number }>>();
  const previous = new Map<string, Map<number, { id: number; session: Session; at: number }>>();
  const reported = new Set<string>();
  for (const session of log.sessions) {
    const after = next.get(session.channel) ?? new Map();
    next.set(session.channel, after);
    const before = previous.get(session.channel) ?? new Map();
    previous.set(session.channel, before);
    for (let i = 1; i < session.items.length; i++) {
      const a = session.items[i - 1] as number;
      const b = session.items[i] as number;
      if (a < 0 || b < 0 || a === b) continue;
      const at = session.times[i] as number;
      for (const [map, key, value, word] of [
        [after, a, b, "after"],
        [before, b, a, "before"],
      ] as const) {
        const known = map.get(key);
        if (!known) {
          map.set(key, { id: value, session, at });
          continue;
        }
        if (known.id === value || reported.has(`${session.channel}:${key}`)) continue;
        const from = Math.min(
          ...[key, value, known.id].map((id) => (log.events[id] as PublishedEvent).sentAt),
        );
        const to = Math.max(at, known.at);
        if (log.faults.some((f) => f.losesData && f.start <= to && (f.end ?? Infinity) >= from)) {
          continue;
        }
        reported.add(`${session.channel}:${key}`);
        violations.push({
          kind: "disagreement",
          subscriber: session.subscriber,
          channel: session.channel,
          eventIds: [key, value, known.id],
          from,
          to,
          detail: `${session.subscriber} got e${value} right ${word} e${key}, ${known.session.subscriber} got e${known.id}: one of them skipped an event or they disagree on the order`,
          faults: inForce(from, to),
        });
      }
    }
  }
}

/** Names of the faults whose window overlaps [from, to] (with 5 s of aftermath). */
function faultsIn(faults: readonly FaultRecord[], from: number, to: number): string[] {
  return faults
    .filter((f) => f.start <= to && (f.end ?? Infinity) + 5_000 >= from)
    .map(
      (f) => `${f.name} ${f.target} ${seconds(f.start)}–${f.end === null ? "…" : seconds(f.end)}`,
    );
}
