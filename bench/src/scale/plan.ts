/**
 * The pure parts of the scale scenario (`./run.ts`): its sizes, how streams split over pods and
 * rooms, the room publisher's schedule, what each stream must receive, the goals' verdicts and
 * the on-paper fleet for more streams. No I/O, no clock.
 */

/** Issue 20, target 4: p99 of a 10-event burst to every stream, and of the rooms' messages. */
export const BROADCAST_P99_GOAL_MS = 1_000;
export const ROOMS_P99_GOAL_MS = 50;

export interface ScaleSize {
  /** Service pods (each one process: fd cap 20,000). */
  pods: number;
  /** Streams in all; each carries its room and the broadcast channel. */
  streams: number;
  /** Rooms (channels `channel:b0` … ); streams / rooms members each. */
  rooms: number;
  /** Events of the broadcast burst. */
  burst: number;
  /**
   * The room phases, in order: messages per second per room, and for how long. The goal's
   * rate is 1/s; a lighter phase first shows the fleet below saturation.
   */
  roomPhases: { rate: number; seconds: number }[];
  /** Load-generator worker processes (≤ 9,500 sockets each). */
  workers: number;
  /** Each pod's MAX_CONNECTIONS. */
  maxConnections: number;
  /** Warm each pod's paths before measuring (default true; the smoke test skips it). */
  warm?: boolean;
}

export const FULL: ScaleSize = {
  pods: 6,
  streams: 100_000,
  rooms: 1_000,
  burst: 10,
  roomPhases: [
    { rate: 0.25, seconds: 8 },
    { rate: 1, seconds: 5 },
  ],
  workers: 12,
  maxConnections: 17_500,
};

export const QUICK: ScaleSize = {
  pods: 3,
  streams: 3_000,
  rooms: 30,
  burst: 10,
  roomPhases: [
    { rate: 0.5, seconds: 2 },
    { rate: 1, seconds: 2 },
  ],
  workers: 2,
  maxConnections: 1_500,
};

/** Per pod: how many streams it gets and the global index of its first one. */
export function splitStreams(streams: number, pods: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  let first = 0;
  for (let p = 0; p < pods; p++) {
    const count = Math.floor(streams / pods) + (p < streams % pods ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

/**
 * The broadcast channel's number: the one after the rooms (rooms are `0 … rooms - 1`). Stream
 * `g` carries room `g % rooms` and the broadcast channel.
 */
export const broadcastChannel = (rooms: number) => rooms;

/**
 * Sequence numbers: the burst is 1 … burst on the broadcast channel; each room phase's
 * messages follow on every room (phase 0 from burst + 1, phase 1 after phase 0's), so every
 * stream sees distinct numbers on its two channels.
 */
export function phaseFirstSeq(size: Pick<ScaleSize, "burst" | "roomPhases">, phase: number) {
  let seq = size.burst + 1;
  for (let p = 0; p < phase; p++) seq += roomsMessagesPerRoom(size.roomPhases[p]);
  return seq;
}

/** Messages each room gets in a phase. */
export const roomsMessagesPerRoom = (phase: { rate: number; seconds: number } | undefined) =>
  phase ? Math.round(phase.rate * phase.seconds) : 0;

/**
 * Message `i` of a room phase: its room, sequence number and when it is due (ms from the
 * phase's start). Rooms take turns, spread evenly: every room `rate` times a second.
 */
export function roomMessage(
  i: number,
  rooms: number,
  firstSeq: number,
  rate: number,
): { room: number; seq: number; dueMs: number } {
  return {
    room: i % rooms,
    seq: firstSeq + Math.floor(i / rooms),
    dueMs: (i * 1000) / (rooms * rate),
  };
}

/**
 * The highest sequence number each stream of room `r` must hold after a phase whose messages
 * start at `firstSeq`, `acked[r]` of them acknowledged (a room's messages go out in order on
 * one connection, so the acknowledged ones are its first).
 */
export function wantedUpTo(firstSeq: number, acked: readonly number[]): number[] {
  return acked.map((n) => firstSeq + n - 1);
}

export interface Verdict {
  broadcast: "met" | "missed" | "n/a";
  rooms: "met" | "missed" | "n/a";
}

/** Goals: (a) p99 ≤ 1 s and 0 loss; (b) p99 ≤ 50 ms (and 0 loss). */
export function verdict(v: {
  broadcastP99Ms: number | null;
  broadcastLoss: number;
  roomsP99Ms: number | null;
  roomsLoss: number;
}): Verdict {
  return {
    broadcast:
      v.broadcastP99Ms === null
        ? "n/a"
        : v.broadcastP99Ms <= BROADCAST_P99_GOAL_MS && v.broadcastLoss === 0
          ? "met"
          : "missed",
    rooms:
      v.roomsP99Ms === null
        ? "n/a"
        : v.roomsP99Ms <= ROOMS_P99_GOAL_MS && v.roomsLoss === 0
          ? "met"
          : "missed",
  };
}

export interface FleetInput {
  /** Streams one pod holds (its MAX_CONNECTIONS, or what memory allows). */
  streamsPerPod: number;
  /** Pod RSS per stream, bytes (measured), and a pod's RSS with no streams. */
  rssPerStreamBytes: number;
  podBaseBytes: number;
  /** Bytes of one event on the wire to one stream (SSE frame + chunk framing). */
  eventWireBytes: number;
  /** Deliveries per second one core sustains (measured: the burst's rate ÷ the cores used). */
  deliveriesPerCoreSecond: number;
}

export interface Fleet {
  streams: number;
  pods: number;
  memoryGiB: number;
  /** Bytes out of the fleet for one event to every stream, and a burst of 10. */
  burstGbit: number;
  /** Core-seconds to deliver one event to every stream; with every pod on its own core, s. */
  coreSecondsPerEvent: number;
  secondsPerEventAllPods: number;
}

/** What a fleet for `streams` needs, from the per-pod figures measured here. */
export function fleetFor(streams: number, f: FleetInput, burst = 10): Fleet {
  const pods = Math.ceil(streams / f.streamsPerPod);
  const memory = pods * f.podBaseBytes + streams * f.rssPerStreamBytes;
  const coreSeconds = streams / f.deliveriesPerCoreSecond;
  return {
    streams,
    pods,
    memoryGiB: Math.round((memory / 2 ** 30) * 10) / 10,
    burstGbit: Math.round(((streams * f.eventWireBytes * burst * 8) / 1e9) * 100) / 100,
    coreSecondsPerEvent: Math.round(coreSeconds * 100) / 100,
    secondsPerEventAllPods: Math.round((coreSeconds / pods) * 1000) / 1000,
  };
}
