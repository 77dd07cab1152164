/**
 * A channel's retained history: what lets a client that was away, or a pod whose broker
 * connection blinked, get back exactly the events it missed.
 *
 * Appending is not part of this interface: the broker appends in the same atomic step in which
 * it assigns the position and publishes, so history and live traffic can never disagree.
 *
 * Contract (the shared contract suite checks it):
 * - `read` returns retained events of `channel` with offset > `after`, ascending, at most
 *   `limit`, together with the channel's current epoch and top offset at the time of reading.
 * - Retention is bounded by size and age; what is trimmed is simply absent, so a caller notices
 *   a hole because the first returned offset is not `after + 1`.
 * - A lost history (e.g. Redis restarted empty) comes back under a new epoch.
 */
import type { ChannelName } from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";

export interface HistoryPage {
  /** The channel's current epoch. */
  readonly epoch: string;
  /** The channel's current top offset (0 when nothing was published in this epoch). */
  readonly top: number;
  /** Retained messages with offset > `after`, ascending. */
  readonly messages: readonly BrokerMessage[];
  /**
   * Which lives (see {@link BrokerMessage.life}) this history speaks for: the Redis that
   * answered, then the one it took over from, if any. Absent where messages carry no life.
   */
  readonly lives?: readonly string[];
}

export interface HistoryStore {
  read(channel: ChannelName, after: number, limit: number): Promise<HistoryPage>;
}

/** How long and how much history is kept per channel. */
export interface HistoryRetention {
  /** Most events kept per channel. Default 10000 (100 events/s for 100 s). */
  readonly size: number;
  /** Longest an event is kept, in ms. Default 300000 (5 minutes). */
  readonly ttlMs: number;
}

export const DEFAULT_RETENTION: HistoryRetention = { size: 10_000, ttlMs: 300_000 };
