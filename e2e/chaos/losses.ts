/**
 * When an event was accepted, and what a data-loss fault (Redis restarted empty or from its
 * RDB, a Cluster master failed over while frozen) excuses for one session: the checker's rules
 * for copies that may be second acceptances (see docs/reliability.md, "What the checker proves").
 */
import type { FaultRecord, PublishedEvent, RunLog, Session } from "./run-log.ts";

/**
 * Accepted no later than this: its 2xx, or the first time anyone received it — unless that was
 * before a 2xx that took more than one attempt, while a Cluster master was frozen past its node
 * timeout (`faults`): the woken master fans out what its sockets had buffered, and its
 * publisher gets no 2xx for it (no replica took it) and retries on the promoted replica. Such a
 * copy comes from a history Redis then drops and binds no one else; the event is accepted by
 * its 2xx.
 */
export function acceptedBy(event: PublishedEvent, faults: readonly FaultRecord[]): number {
  const ack = event.ackAt ?? Infinity;
  const seen = event.firstSeenAt ?? Infinity;
  if (seen >= ack) return ack;
  if (event.ackAt === null || event.attempts < 2) return seen;
  const woken = faults.some(
    (f) => f.name === "redis-stop" && f.losesData && f.start <= seen && seen <= (f.end ?? Infinity),
  );
  return woken ? ack : seen;
}

/** Stands for a copy set aside by {@link afterLoss} (ids are ≥ 0, resets < 0). */
export const EXEMPT = Number.NEGATIVE_INFINITY;

/** A data-loss fault as one session saw it. */
export interface LossSeen {
  readonly fault: FaultRecord;
  /** The session's first reset at or after the fault's start; −1: none. */
  readonly firstReset: number;
  /** The session began after the fault started (in the history after the loss, or during it). */
  readonly began: boolean;
}

/**
 * Whether the copy of `event` at item `i` arrived after Redis lost data while the event was
 * still in flight, and is not one the session was owed: such an event may be accepted a second
 * time as a new event (its `Idempotency-Key` was lost with the data; a pod that a frozen or
 * cut request reaches late publishes it again; a command resent on reconnect runs again; a
 * frozen master that was failed over runs what it had buffered before it learns so), so this
 * copy may be a second one, in the new history's order, not the first's. Only its first copy
 * counts: for a session that began before the loss, the first copy is before a reset, which
 * covers it if it was lost with the data; a session that began after the loss started is not
 * owed a first copy accepted before the session began, and gets only later ones.
 */
export function afterLoss(
  losses: readonly LossSeen[],
  session: Session,
  event: PublishedEvent,
  i: number,
  at: number,
  faults: readonly FaultRecord[],
): boolean {
  return losses.some(
    ({ fault, firstReset, began }) =>
      fault.start <= at &&
      event.sentAt <= (fault.end ?? Infinity) &&
      ((firstReset >= 0 && firstReset < i) ||
        (began && acceptedBy(event, faults) < session.readyAt)),
  );
}

/** The data-loss faults, as `session` saw them. */
export function lossesSeen(log: RunLog, session: Session): LossSeen[] {
  return log.faults
    .filter((fault) => fault.losesData)
    .map((fault) => ({
      fault,
      firstReset: session.items.findIndex(
        (id, r) => id < 0 && (session.times[r] as number) >= fault.start,
      ),
      began: session.readyAt >= fault.start,
    }))
    .filter(({ firstReset, began }) => firstReset >= 0 || began);
}
