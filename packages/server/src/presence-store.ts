/**
 * Where presence lives: which connections of which users are in which `channel:<id>` room, on
 * which pod. One store handle per pod; every pod of a deployment shares the backend.
 *
 * Contract (every implementation; the shared suite in `testing/presence-contract.ts` checks it):
 * - A user is **online in a channel** while at least one of their connections, on any pod, is
 *   there. Connections are identified by pod and stream (`<podId>:<streamId>`).
 * - Transitions are decided atomically by the store, per channel, so two pods can never both
 *   report `online` (or `offline`) for one change: `apply` reports `online` only when a user
 *   goes from no connection to one and was not in a grace period.
 * - When a user's last connection leaves, the user stays online for a grace period: `apply`
 *   returns a {@link PresenceGrace}, and the pod that started it calls `settle` once the
 *   deadline passed. A connection that comes back within the grace period cancels it, so
 *   `settle` reports nothing and no event is emitted at all.
 * - Crash safety: a pod proves it is alive with `heartbeat` (one call per pod per interval,
 *   whatever its number of connections). `reap` (any pod; the store lets one pod at a time do
 *   the work) removes the entries of pods silent for longer than the TTL, reports `offline`
 *   for users left without connections and hands the dead pod's pending grace periods to the
 *   reaping pod. A pod whose entries were reaped while it was in fact alive learns it from its
 *   next `heartbeat` (`lost`) and joins its connections again.
 * - `join` and `leave` are idempotent per stream; `apply` keeps the order of its changes within
 *   each channel (channels are independent).
 */
import type { ChannelName } from "@realtime/protocol";

export type PresenceStatus = "online" | "offline";

/** A change one pod makes: one of its streams joins or leaves a channel's presence. */
export type PresenceChange =
  | {
      readonly kind: "join";
      readonly channel: ChannelName;
      /** Unique on this pod (the hub's stream id). */
      readonly streamId: string;
      readonly userId: string;
      readonly userName: string;
    }
  | { readonly kind: "leave"; readonly channel: ChannelName; readonly streamId: string };

/** A user went online or offline in a channel: exactly one pod gets to publish it. */
export interface PresenceTransition {
  readonly channel: ChannelName;
  readonly userId: string;
  readonly userName: string;
  readonly status: PresenceStatus;
  /** Orders the channel's transitions (see the contract above); a safe integer. */
  readonly version: number;
}

/**
 * A grace period owned by this pod: the user's last connection left; once `deadline` (ms since
 * the epoch) passed, {@link PresenceStore.settle} it. `token` names this grace period alone.
 */
export interface PresenceGrace {
  readonly channel: ChannelName;
  readonly userId: string;
  readonly deadline: number;
  readonly token: string;
}

export interface PresenceApplyResult {
  /** In the order the changes caused them, per channel (channels may be interleaved). */
  readonly transitions: PresenceTransition[];
  /** Grace periods this pod started and must settle. */
  readonly graces: PresenceGrace[];
}

export interface PresenceReapResult {
  /** `offline` for users whose last connection was on a dead pod. */
  readonly transitions: PresenceTransition[];
  /** Grace periods of dead pods, now owned by this pod. */
  readonly graces: PresenceGrace[];
}

/** One user in a channel's snapshot. */
export interface PresenceUser {
  readonly userId: string;
  readonly userName: string;
  /**
   * Open connections of the user in the channel, over every pod. 0 while the user is in the
   * grace period: still online, the `offline` event has not been emitted yet.
   */
  readonly connections: number;
}

/** A channel's presence as a store reads it, at once. */
export interface PresenceSnapshot {
  readonly users: PresenceUser[];
  /** Every transition with a version up to this one is reflected in `users`. */
  readonly version: number;
}

export interface PresenceStore {
  /** This pod's id in the store. */
  readonly podId: string;
  /**
   * Records that this pod is alive. `lost` is true when the store no longer has this pod's
   * entries (they were reaped, or the backend lost its data): the caller joins every
   * connection again. The first heartbeat of a new pod never reports `lost`.
   *
   * `reaped`: the backend came back with an older copy of this pod's entries (Redis restarted
   * from disk) — which may list connections closed since — and the store reaped them as a
   * dead pod's; the caller owns the grace periods and reports the transitions, as after
   * {@link reap}, and joins every connection again (`lost` is true then).
   */
  heartbeat(now: number): Promise<{ readonly lost: boolean; readonly reaped?: PresenceReapResult }>;
  /**
   * Applies joins and leaves of this pod, in order. While the backend is unreachable the
   * store retries on its own, so that no decided transition is lost (a networked store makes
   * its writes idempotent for that); it rejects only once closed.
   */
  apply(changes: readonly PresenceChange[], now: number): Promise<PresenceApplyResult>;
  /**
   * Ends grace periods this pod owns (call once their deadline passed): `offline` for each
   * user still without a connection. Grace periods cancelled by a rejoin report nothing.
   * Retries like `apply`.
   */
  settle(graces: readonly PresenceGrace[]): Promise<PresenceTransition[]>;
  /**
   * Reaps pods silent for longer than the TTL (see the contract above). May reject when the
   * backend is unreachable; what was decided before is still reported by a later call.
   */
  reap(now: number): Promise<PresenceReapResult>;
  /**
   * Who is online in `channel` now, sorted by user id, and a version at least that of the
   * channel's last transition (0 when it never had one; a store may version every channel
   * with one counter), below that of any later one.
   */
  snapshot(channel: ChannelName): Promise<PresenceSnapshot>;
  /**
   * Graceful stop: this pod stops heartbeating and its entries are reaped (by another pod) one
   * grace period after `now`, so clients that reconnect elsewhere meanwhile cause no events.
   */
  retire(now: number): Promise<void>;
  close(): Promise<void>;
}

/** The timings every store takes. */
export interface PresenceTimings {
  /** How long a user stays online after their last connection left, in ms. Default 5000. */
  readonly graceMs: number;
  /** A pod silent for longer than this is dead and its entries are reaped, in ms. Default 10000. */
  readonly ttlMs: number;
}

export const DEFAULT_PRESENCE_TIMINGS: PresenceTimings = { graceMs: 5_000, ttlMs: 10_000 };

/** Only rooms have presence; `user:<id>` channels are private. */
export function hasPresence(channel: ChannelName): boolean {
  return channel.startsWith("channel:");
}
