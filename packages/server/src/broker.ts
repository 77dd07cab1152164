/**
 * The broker carries events from publishers to every pod that has subscribers for a channel.
 *
 * Contract (every implementation; the shared contract suite checks it):
 * - `publish` resolves only once the event is safely in the broker, with the position it was
 *   given. Positions of one channel are 1, 2, 3, … within one epoch: contiguous, never reused.
 *   A publish that rejects was not delivered to anyone.
 * - A pod receives messages only for channels it subscribed to, in position order per channel.
 *   Delivery is at most once: a listener that misses messages notices a gap in positions.
 * - `subscribe`/`unsubscribe` are idempotent per channel: the {@link Hub} reference-counts its
 *   local subscribers and calls them only on the first join and the last leave.
 * - Every event takes the broker path, also when publisher and subscriber share a process.
 */
import type { ChannelName, StreamPosition } from "@realtime/protocol";

/** One event as it travels through the broker: the JSON is made once, by the publisher. */
export interface BrokerMessage {
  readonly channel: ChannelName;
  /** The channel's history epoch. Changes when the history is lost. */
  readonly epoch: string;
  /** Position within the channel, from 1. */
  readonly offset: number;
  /** The event, serialised as JSON once. */
  readonly data: string;
}

export type BrokerListener = (message: BrokerMessage) => void;

export interface Broker {
  /** Assigns the next position of `channel`, stores and fans out `data` (JSON text). */
  publish(channel: ChannelName, data: string): Promise<StreamPosition>;
  /** Starts receiving messages of `channel`. Resolves when the subscription is live. */
  subscribe(channel: ChannelName): Promise<void>;
  /** Stops receiving messages of `channel`. */
  unsubscribe(channel: ChannelName): Promise<void>;
  /** The current top position of `channel` (offset 0 if nothing was published yet). */
  position(channel: ChannelName): Promise<StreamPosition>;
  /**
   * The channel went back below `seen` within its epoch: the backend lost a tail it had
   * acknowledged (a Redis restarted from an older snapshot, a replica promoted before it had
   * the last writes). Its next offsets would repeat ones already delivered with other events,
   * so the broker starts a new epoch for the channel unless it is already in another epoch or
   * not below `seen`. Returns the position after. Optional: a broker whose positions cannot
   * go back (in-process) has nothing to do.
   */
  rebase?(channel: ChannelName, seen: StreamPosition): Promise<StreamPosition>;
  /** Registers the (single) listener that receives every subscribed message. */
  setListener(listener: BrokerListener): void;
  /** Whether the broker is ready to take traffic (connected, subscriptions confirmed). */
  ready(): boolean;
  /**
   * Registers a callback for when the live path came back after an interruption (every
   * subscription re-confirmed). Messages published meanwhile may be lost: the hub compares
   * positions and backfills from history. Optional: an in-process broker never interrupts.
   */
  onReconnect?(listener: () => void): void;
  close(): Promise<void>;
}
