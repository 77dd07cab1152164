/**
 * The chaos checker's verdicts on hand-made run logs: each way of breaking the promise is
 * caught, and what the protocol allows (a reset after lost data, an unknown publish outcome,
 * concurrent publishes, a session joining late) is not held against the service.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { check } from "./checker.ts";
import {
  type FaultRecord,
  type PublishedEvent,
  type RunLog,
  recordEvent,
  recordReset,
  type Session,
} from "./run-log.ts";

const CHANNEL = "channel:c";

/** Events published one after the other: e<i> sent at 10·i + 10, accepted 5 ms later. */
function sequential(count: number): PublishedEvent[] {
  return Array.from({ length: count }, (_, id) => ({
    id,
    channel: CHANNEL,
    via: "publish" as const,
    sentAt: 10 * id + 10,
    ackAt: 10 * id + 15,
    attempts: 1,
    firstSeenAt: null,
  }));
}

function session(subscriber: string, readyAt = 1, endedAt: number | null = null): Session {
  return {
    subscriber,
    channel: CHANNEL,
    requestedAt: 0,
    readyAt,
    items: [],
    times: [],
    resets: [],
    endedAt,
  };
}

/** Receives `ids` in this order, each 3 ms after its acceptance (`reset` → a reset). */
function receive(log: RunLog, into: Session, ids: readonly (number | string)[]): void {
  let at = 0;
  for (const id of ids) {
    if (typeof id === "string") {
      recordReset(into, id, at + 1);
      at += 1;
      continue;
    }
    const event = log.events[id] as PublishedEvent;
    at = Math.max(at, (event.ackAt ?? event.sentAt) + 3);
    recordEvent(into, id, at);
    event.firstSeenAt = Math.min(event.firstSeenAt ?? Infinity, at);
  }
}

function runLog(events: PublishedEvent[], faults: FaultRecord[] = []): RunLog {
  return { seed: 1, events, sessions: [], faults, strays: [] };
}

const redisEmpty = (start: number, end: number): FaultRecord => ({
  name: "redis-empty",
  target: "redis",
  start,
  end,
  losesData: true,
});

/**
 * e2 was first accepted at t=33 (its first copy seen then), lost with Redis's data in `loss`,
 * and published again by its retry (2xx at t=95); a session that became ready at `readyAt`
 * gets e3, then e2's second copy.
 */
function republishedAfter(loss: FaultRecord, readyAt: number): RunLog {
  const events = sequential(4);
  const retried = events[2] as PublishedEvent;
  retried.attempts = 2;
  retried.ackAt = 95;
  retried.firstSeenAt = 33;
  const log = runLog(events, [loss]);
  const s = session("s1", readyAt);
  recordEvent(s, 3, 90);
  recordEvent(s, 2, 97);
  log.sessions.push(s);
  return log;
}

describe("chaos checker", () => {
  it("every event once, in order: no violation", () => {
    const log = runLog(sequential(5));
    const s = session("s1");
    receive(log, s, [0, 1, 2, 3, 4]);
    log.sessions.push(s);
    const verdict = check(log);
    assert.deepEqual(verdict.violations, []);
    assert.equal(verdict.deliveries, 5);
  });

  it("an event missing in the middle is a loss, naming it", () => {
    const log = runLog(sequential(5));
    const s = session("s1");
    receive(log, s, [0, 1, 3, 4]);
    log.sessions.push(s);
    const verdict = check(log);
    assert.equal(verdict.losses, 1);
    assert.deepEqual(verdict.violations[0]?.eventIds, [2]);
  });

  it("the last events missing from a session open to the end are lost too", () => {
    const log = runLog(sequential(5));
    const s = session("s1");
    receive(log, s, [0, 1, 2]);
    log.sessions.push(s);
    assert.equal(check(log).losses, 2);
  });

  it("…but not from a session that ended (the subscriber dropped its cursor)", () => {
    const log = runLog(sequential(5));
    const s = session("s1", 1, 40);
    receive(log, s, [0, 1, 2]);
    log.sessions.push(s);
    assert.deepEqual(check(log).violations, []);
  });

  it("a gap covered by a reset after Redis lost data is no violation", () => {
    const log = runLog(sequential(6), [redisEmpty(25, 28)]);
    const s = session("s1");
    receive(log, s, [0, 1, "epoch_changed", 4, 5]);
    log.sessions.push(s);
    const verdict = check(log);
    assert.deepEqual(verdict.violations, []);
    assert.equal(verdict.covered, 2);
    assert.equal(verdict.resets, 1);
  });

  it("a reset while Redis lost nothing is a false reset", () => {
    const log = runLog(sequential(6));
    const s = session("s1");
    receive(log, s, [0, 1, "trimmed", 4, 5]);
    log.sessions.push(s);
    const verdict = check(log);
    assert.equal(verdict.falseResets, 1);
    assert.equal(verdict.losses, 0, "the reset still covers the gap");
  });

  it("a reset placed before events it cannot cover leaves them lost", () => {
    const log = runLog(sequential(6), [redisEmpty(5, 8)]);
    const s = session("s1");
    receive(log, s, ["epoch_changed", 0, 1, 4, 5]);
    log.sessions.push(s);
    assert.equal(check(log).losses, 2);
  });

  it("an event received twice is a duplicate", () => {
    const log = runLog(sequential(4));
    const s = session("s1");
    receive(log, s, [0, 1, 2]);
    recordEvent(s, 2, 100);
    receive(log, s, [3]);
    log.sessions.push(s);
    const verdict = check(log);
    assert.equal(verdict.duplicates, 1);
  });

  it("twice across a reset after Redis lost data while it was in flight: set aside, not a duplicate", () => {
    const events = sequential(4);
    const retried = events[2] as PublishedEvent;
    retried.attempts = 2;
    retried.ackAt = 80;
    const log = runLog(events, [redisEmpty(34, 38)]);
    const s = session("s1");
    recordEvent(s, 0, 20);
    recordEvent(s, 1, 30);
    recordEvent(s, 2, 33);
    recordReset(s, "epoch_changed", 70);
    recordEvent(s, 2, 82);
    recordEvent(s, 3, 90);
    log.sessions.push(s);
    const verdict = check(log);
    assert.deepEqual(verdict.violations, []);
    assert.equal(verdict.republished, 1);
  });

  it("a second copy in a session that began after the loss (no reset needed): set aside", () => {
    // Found by seed 1004: e2 was accepted before Redis restarted empty, its idempotency key
    // was lost with the data, and its retry published it again after e3; a subscriber that
    // forgot its cursor began a new session in the new history and got e3, then e2.
    const verdict = check(republishedAfter(redisEmpty(34, 38), 60));
    assert.deepEqual(verdict.violations, []);
    assert.equal(verdict.republished, 1);
  });

  it("a session that began while the loss was in force is owed what was sent after its start", () => {
    // Found by Cluster seed 2010: a master frozen past its node timeout (data may be lost at
    // the failover, seconds later); a session that began meanwhile got an event sent after
    // its start once, and nothing may set that copy aside (or it reads as lost).
    const events = sequential(4);
    const log = runLog(events, [redisEmpty(12, 60)]);
    const s = session("s1", 20);
    recordEvent(s, 2, 33);
    recordEvent(s, 3, 43);
    log.sessions.push(s);
    assert.deepEqual(check(log).violations, []);
    const missing = session("s2", 20);
    recordEvent(missing, 3, 43);
    const again = runLog(sequential(4), [redisEmpty(12, 60)]);
    again.sessions.push(missing);
    assert.equal(check(again).losses, 1, "and a loss is a loss");
  });

  it("a session that began during the loss: a copy of an event first accepted before it, set aside", () => {
    // Found by Cluster seed 2013: a master frozen past its node timeout ran what it had
    // buffered when it woke (e2, seen by others), then lost it to the failover; the retry
    // published e2 again, after e3, and a session that began in between got e3, then e2.
    const verdict = check(republishedAfter(redisEmpty(12, 60), 38));
    assert.deepEqual(verdict.violations, []);
    assert.equal(verdict.republished, 1);
  });

  it("a copy seen before its 2xx while Redis was losing data binds no one else", () => {
    // Found by Cluster seed 2415: a master that woke after its failover fanned e1 out to the
    // pods still subscribed on it (no 2xx: no replica took it); streams on other pods got e2
    // and e3 from the promoted replica, and a reset once e1's retry was accepted there.
    const zombie = (losesData: boolean, change: Partial<PublishedEvent> = {}) => {
      const events = sequential(4);
      Object.assign(events[1] as PublishedEvent, {
        firstSeenAt: 22,
        ackAt: 70,
        attempts: 3,
        ...change,
      });
      const stop: FaultRecord = {
        name: "redis-stop",
        target: "cluster",
        start: 18,
        end: 60,
        losesData,
      };
      const log = runLog(events, [stop]);
      const s = session("s1");
      recordEvent(s, 0, 18);
      recordEvent(s, 2, 38);
      recordEvent(s, 3, 48);
      recordReset(s, "epoch_changed", 75);
      log.sessions.push(s);
      return check(log);
    };
    assert.deepEqual(zombie(true).violations, [], "owed from its 2xx on: the reset covers it");
    assert.equal(zombie(false).losses, 1, "outside a data loss, the first sighting binds");
    assert.equal(
      zombie(true, { attempts: 1 }).losses,
      1,
      "a first attempt's 2xx: the copy seen before it was the accepted one",
    );
    assert.equal(zombie(true, { ackAt: null }).losses, 1, "never a 2xx: the sighting binds");
  });

  it("…but a session that began before the loss and saw no reset gets a reorder", () => {
    assert.ok(check(republishedAfter(redisEmpty(34, 38), 1)).reorders >= 1);
  });

  it("an event after one published later is a reorder", () => {
    const log = runLog(sequential(4));
    const s = session("s1");
    recordEvent(s, 0, 20);
    recordEvent(s, 2, 40);
    recordEvent(s, 1, 41);
    recordEvent(s, 3, 50);
    log.sessions.push(s);
    assert.ok(check(log).reorders >= 1);
  });

  it("concurrent publishes may come in either order, but the same for everyone", () => {
    // e1 and e2 were in flight at the same time.
    const events = sequential(4);
    Object.assign(events[1] as PublishedEvent, { sentAt: 20, ackAt: 40 });
    Object.assign(events[2] as PublishedEvent, { sentAt: 21, ackAt: 41 });
    const log = runLog(events);
    const a = session("a");
    const b = session("b");
    for (const [s, order] of [
      [a, [0, 1, 2, 3]],
      [b, [0, 2, 1, 3]],
    ] as const) {
      recordEvent(s, order[0], 20);
      recordEvent(s, order[1], 42);
      recordEvent(s, order[2], 43);
      recordEvent(s, order[3], 50);
      log.sessions.push(s);
    }
    const verdict = check(log);
    assert.equal(verdict.losses + verdict.duplicates, 0);
    assert.ok(verdict.reorders >= 1, "the two subscribers disagree");
    log.sessions.pop();
    assert.deepEqual(check(log).violations, [], "either order alone is fine");
  });

  it("an event whose publish outcome is unknown: not owed if nobody got it, owed once anyone did", () => {
    const events = sequential(4);
    Object.assign(events[2] as PublishedEvent, { ackAt: null });
    const log = runLog(events);
    const a = session("a");
    receive(log, a, [0, 1, 3]);
    log.sessions.push(a);
    assert.deepEqual(check(log).violations, [], "maybe never published");
    const b = session("b");
    receive(log, b, [0, 1, 2, 3]);
    log.sessions.push(b);
    const verdict = check(log);
    assert.ok(verdict.losses + verdict.reorders >= 1, "b proves it was published: a skipped it");
  });

  it("a session owes nothing sent before its ready arrived, unless it got something earlier", () => {
    const log = runLog(sequential(5));
    const late = session("late", 27);
    receive(log, late, [2, 3, 4]);
    log.sessions.push(late);
    assert.deepEqual(check(log).violations, [], "e0, e1 were before the session");
    const gap = session("gap", 27);
    receive(log, gap, [1, 3, 4]);
    log.sessions.push(gap);
    assert.equal(check(log).losses, 1, "after e1 it owes e2");
  });

  it("a block that is not one of the run's events is a stray", () => {
    const log = runLog(sequential(1));
    log.strays.push({ subscriber: "s1", at: 5, what: "event: surprise" });
    assert.equal(check(log).strays, 1);
  });
});
