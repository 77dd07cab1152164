/**
 * The pure parts of the reconnect storm (`scenarios/storm.ts`): when a resumed subscriber
 * counts as caught up, and the figures made of the per-subscriber times. No I/O, no clock:
 * every time is a CLOCK_MONOTONIC µs value handed in (the harness's shared clock).
 *
 * Definitions (bench/README.md says the same):
 * - a subscriber's **resume point** is the moment the response head (status 200) of its
 *   reconnect arrived;
 * - it **needs** every event of its channel whose publish was acknowledged (the POST's 2xx
 *   arrived at the publisher) at or before its resume point: sequence numbers 1 … required;
 * - it is **caught up** once it holds all of those: at the later of its resume point and the
 *   arrival of the last of them. A subscriber missing any of them is never caught up.
 * - **time to 100 % resumed** = from the SIGKILL to the last subscriber caught up.
 */

/** The goal of issue 20: every stream resumed (caught up) within 3 s of the kill. */
export const STORM_GOAL_MS = 3_000;

/**
 * The highest sequence number `s` such that every event 1 … s was acknowledged at or before
 * `atUs`. `acks[s]` is the acknowledgement time of event `s` of the channel (0: not
 * acknowledged, or failed); index 0 is unused. Publishes of one channel go out in order on one
 * pipelined connection, so acknowledgements are in order too; a gap stops the count anyway.
 */
export function requiredSeq(acks: ArrayLike<number>, atUs: number): number {
  let s = 0;
  for (let i = 1; i < acks.length; i++) {
    const t = acks[i] as number;
    if (t <= 0 || t > atUs) break;
    s = i;
  }
  return s;
}

/**
 * When a subscriber resumed at `headUs` had every event 1 … `required` (`recvUs[s]`: when event
 * `s` arrived, 0 if never): the later of `headUs` and the last arrival, or -1 if one is missing
 * or it never resumed (`headUs` ≤ 0).
 */
export function caughtUpAt(recvUs: ArrayLike<number>, required: number, headUs: number): number {
  if (headUs <= 0) return -1;
  let at = headUs;
  for (let s = 1; s <= required; s++) {
    const t = s < recvUs.length ? (recvUs[s] as number) : 0;
    if (t <= 0) return -1;
    if (t > at) at = t;
  }
  return at;
}

/** Per-subscriber outcome of a storm, as a worker reports it. */
export interface SubOutcome {
  /** When its stream on the killed pod ended (µs). */
  dropUs: number;
  /** When the response head of its resume arrived (µs), 0 if it never resumed. */
  headUs: number;
  /** When it was caught up (µs), -1 if never. */
  caughtUpUs: number;
}

export interface StormFigures {
  /** Subscribers that were on the killed pod. */
  subscribers: number;
  /** Of them, resumed (200) on a surviving pod. */
  resumed: number;
  /** Of them, caught up. */
  caughtUp: number;
  /** Kill → last response head of a resume, ms (null if one never resumed). */
  allHeadersMs: number | null;
  /** Kill → last subscriber caught up: time to 100 % resumed, ms (null if one never was). */
  allCaughtUpMs: number | null;
  /** Per-subscriber kill → caught up, ms: median and 99th percentile of those caught up. */
  p50CaughtUpMs: number | null;
  p99CaughtUpMs: number | null;
  /** Kill → the last drop seen by a client, ms. */
  lastDropMs: number | null;
  /** Absolute µs of the last subscriber caught up (the end of the storm window), or null. */
  endUs: number | null;
}

const ms = (us: number) => Math.round(us / 100) / 10;

/** Nearest-rank percentile of sorted values. */
function rank(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number;
}

/** The storm's figures from every subscriber's outcome and the kill time. */
export function stormFigures(outcomes: readonly SubOutcome[], killUs: number): StormFigures {
  let resumed = 0;
  let lastHead = 0;
  let lastDrop = 0;
  const caught: number[] = [];
  for (const o of outcomes) {
    if (o.headUs > 0) {
      resumed++;
      lastHead = Math.max(lastHead, o.headUs);
    }
    if (o.dropUs > 0) lastDrop = Math.max(lastDrop, o.dropUs);
    if (o.caughtUpUs > 0) caught.push(o.caughtUpUs - killUs);
  }
  caught.sort((a, b) => a - b);
  const n = outcomes.length;
  const all = n > 0 && caught.length === n;
  const last = caught.length > 0 ? (caught[caught.length - 1] as number) : 0;
  return {
    subscribers: n,
    resumed,
    caughtUp: caught.length,
    allHeadersMs: n > 0 && resumed === n ? ms(lastHead - killUs) : null,
    allCaughtUpMs: all ? ms(last) : null,
    p50CaughtUpMs: caught.length > 0 ? ms(rank(caught, 0.5)) : null,
    p99CaughtUpMs: caught.length > 0 ? ms(rank(caught, 0.99)) : null,
    lastDropMs: lastDrop > 0 ? ms(lastDrop - killUs) : null,
    endUs: all ? killUs + last : null,
  };
}

/**
 * How many subscribers were caught up at each `stepMs` after the kill (cumulative counts), to
 * print the storm's curve: `[10, 250, …]` means 10 by `stepMs`, 250 by 2 × `stepMs`, …
 */
export function resumeCurve(
  outcomes: readonly SubOutcome[],
  killUs: number,
  stepMs: number,
  steps: number,
): number[] {
  const counts = new Array<number>(steps).fill(0);
  for (const o of outcomes) {
    if (o.caughtUpUs <= 0) continue;
    const bin = Math.floor((o.caughtUpUs - killUs) / 1000 / stepMs);
    if (bin < steps) counts[Math.max(0, bin)] = (counts[Math.max(0, bin)] as number) + 1;
  }
  for (let i = 1; i < steps; i++) counts[i] = (counts[i] as number) + (counts[i - 1] as number);
  return counts;
}

/**
 * TcpExt counters of /proc/net/netstat (the network namespace's, so every process on the
 * machine counts, not only the pods): `ListenOverflows` (a connection completed but the accept
 * queue was full: its SYN or ACK dropped, the client retransmits after 1 s, 3 s, …) and
 * `ListenDrops`.
 */
export function tcpExt(text: string, names: readonly string[]): Record<string, number> {
  const lines = text.split("\n");
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < lines.length; i++) {
    const keys = (lines[i] as string).split(" ");
    if (keys[0] !== "TcpExt:") continue;
    const values = (lines[i + 1] as string).split(" ");
    if (values[0] !== "TcpExt:") continue;
    for (const name of names) {
      const at = keys.indexOf(name);
      if (at > 0) out[name] = Number(values[at]);
    }
  }
  return out;
}
