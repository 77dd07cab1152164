/**
 * The broker carries events from publishers to every pod that has subscribers for a channel.
 *
 * Contract (every implementation; the shared contract suite checks it):
 * - `publish` resolves only once the event is safely in the broker, with the position it was
 *   given. Positions of one channel are 1, 2, 3, … within one epoch: contiguous, never reused.
 *   A publish that rejects may still have been accepted (a reply lost to a timeout or a cut
 *   connection): retry it with the same `idempotencyKey` to publish it at most once.
 * - A pod receives messages only for channels it subscribed to, in position order per channel.
 *   Delivery is at most once: a listener that misses messages notices a gap in positions.
 * - `subscribe`/`unsubscribe` are idempotent per channel: the {@link Hub} reference-counts its
 *   local subscribers and calls them only on the first join and the last leave.
 * - Every event takes the broker path, also when publisher and subscriber share a process.
 * - Idempotent publishes ({@link PublishOptions.idempotencyKey}): within the key's window, at
 *   most one publish with that key on that channel is published, also when pods race; every
 *   other one publishes nothing and resolves with the first one's position and `duplicate`.
 *   The check and the publish are one atomic step on the backend.
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
  /**
   * Which history wrote it, for brokers whose history can fork (the Redis broker: the first 8
   * hex digits of the writing Redis's `master_replid`). Two messages at one offset of one epoch
   * with different lives come from two histories — a Redis Cluster master frozen past its node
   * timeout wakes and, for a moment still a master, writes at offsets its promoted replica is
   * giving to other events — and the pod moves the channel to a new epoch. Unset where the
   * history cannot fork (the memory broker) or the entry predates lives.
   */
  readonly life?: string | undefined;
  /**
   * When the broker was handed the event: ms since the Unix epoch by the publishing process's
   * clock. Live messages only (history does not keep it); the pods observe publish→delivery
   * latency from it. Unset where the publisher's broker did not carry it.
   */
  readonly publishedAt?: number | undefined;
  /** The publish request's id ({@link PublishOptions.requestId}); live messages only. */
  readonly requestId?: string | undefined;
}

export type BrokerListener = (message: BrokerMessage) => void;

/** How long a broker remembers an idempotency key by default: 10 minutes. */
export const DEFAULT_IDEMPOTENCY_WINDOW_MS = 600_000;
/** Longest idempotency key a broker accepts, in characters. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** Options of one {@link Broker.publish}. */
export interface PublishOptions {
  /**
   * Makes the publish idempotent. The first publish with this key on the channel is published
   * as usual and its position remembered for {@link idempotencyWindowMs}; a publish with the
   * same key on the same channel within that window publishes nothing and resolves with the
   * remembered position (even if the channel has moved to another epoch since) and
   * `duplicate: true`. The key is opaque to the broker (1–256 characters) and scoped by the
   * channel only: a caller that serves several publishers must fold the publisher's identity
   * into it (the service hashes identity and key together).
   */
  readonly idempotencyKey?: string | undefined;
  /**
   * How long the key is remembered, in ms, counted from the publish that was published (a
   * duplicate does not extend it). A positive integer; default
   * {@link DEFAULT_IDEMPOTENCY_WINDOW_MS}. Ignored without {@link idempotencyKey}.
   */
  readonly idempotencyWindowMs?: number | undefined;
  /**
   * What this publish carries, in short (a hash of the event as given): a repeat of the key
   * with another fingerprint is not a retry but a reuse of the key for something else, and is
   * refused with {@link IdempotencyConflict} instead of answered as a duplicate. Up to 64
   * characters from `[A-Za-z0-9_-]`; default empty (every repeat is a duplicate).
   */
  readonly idempotencyFingerprint?: string | undefined;
  /**
   * The id of the request that asked for this publish (an `X-Request-Id`), carried with the
   * live message to every pod that delivers it ({@link BrokerMessage.requestId}), so that one
   * event can be followed across pods' logs. 1–128 characters of `[A-Za-z0-9._:-]`
   * ({@link isRequestId}); anything else is a `TypeError`.
   */
  readonly requestId?: string | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Whether `value` may be a request id: a plain token (a UUID, a ULID, nginx's `$request_id`),
 * safe to carry between pods and to write into a log line.
 */
export function isRequestId(value: unknown): value is string {
  return typeof value === "string" && REQUEST_ID.test(value);
}

/**
 * The checked request id of `options`, or undefined when it has none. Throws a `TypeError` for
 * one that is not {@link isRequestId}. For implementations.
 */
export function requestIdOf(options: PublishOptions | undefined): string | undefined {
  const id = options?.requestId;
  if (id === undefined) return undefined;
  if (!isRequestId(id)) {
    throw new TypeError("a request id must be 1-128 characters of [A-Za-z0-9._:-]");
  }
  return id;
}

/** A publish that reused an idempotency key, within its window, for a different event. */
export class IdempotencyConflict extends Error {
  constructor() {
    super("the idempotency key was used for a different event within its window");
    this.name = "IdempotencyConflict";
  }
}

/**
 * The broker holds as many channels as it may, and none can be released for a new one (every
 * channel it holds has subscribers). The caller refuses the request; nothing was published.
 */
export class ChannelCapacityError extends Error {
  constructor(max: number) {
    super(`the broker holds its maximum of ${max} channels, all of them in use`);
    this.name = "ChannelCapacityError";
  }
}

/** What {@link Broker.publish} resolves with. */
export interface PublishResult extends StreamPosition {
  /**
   * True when an earlier publish with the same idempotency key was published within its window:
   * nothing was published now, and the position is that earlier event's. Always false without
   * a key.
   */
  readonly duplicate: boolean;
}

/** An idempotency key, its window and the publish's fingerprint, checked. */
export interface Idempotency {
  readonly key: string;
  readonly windowMs: number;
  readonly fingerprint: string;
}

const FINGERPRINT = /^[A-Za-z0-9_-]{0,64}$/;

/**
 * The checked idempotency of `options`, or null when it has no key. Throws a `TypeError` for
 * an empty or over-long key or a window that is not a positive integer. For implementations.
 */
export function idempotencyOf(options: PublishOptions | undefined): Idempotency | null {
  const key = options?.idempotencyKey;
  if (key === undefined) return null;
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw new TypeError(
      `an idempotency key must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} characters long`,
    );
  }
  const windowMs = options?.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
  if (!Number.isSafeInteger(windowMs) || windowMs < 1) {
    throw new TypeError(`an idempotency window must be a positive integer (ms), got ${windowMs}`);
  }
  const fingerprint = options?.idempotencyFingerprint ?? "";
  if (typeof fingerprint !== "string" || !FINGERPRINT.test(fingerprint)) {
    throw new TypeError("an idempotency fingerprint must be up to 64 of [A-Za-z0-9_-]");
  }
  return { key, windowMs, fingerprint };
}

export interface Broker {
  /**
   * Assigns the next position of `channel`, stores and fans out `data` (JSON text) — unless
   * `options.idempotencyKey` names a publish already made within its window: then nothing is
   * published and the result is that publish's position with `duplicate: true` (or, when its
   * fingerprint differs, nothing is published and it rejects with {@link IdempotencyConflict}).
   * Rejects with a `TypeError` for an invalid key or window.
   */
  publish(channel: ChannelName, data: string, options?: PublishOptions): Promise<PublishResult>;
  /** Starts receiving messages of `channel`. Resolves when the subscription is live. */
  subscribe(channel: ChannelName): Promise<void>;
  /** Stops receiving messages of `channel`. */
  unsubscribe(channel: ChannelName): Promise<void>;
  /**
   * The current top position of `channel` (offset 0 if nothing was published yet). A channel
   * the broker holds no state for gets its epoch now, so that the first publish stays in the
   * epoch reported; that state is kept only as long as a channel nobody uses (see below).
   *
   * Channel state (epoch, offset) outlives the channel's last use — a publish, a `position`
   * read, a subscriber leaving — by the broker's idle TTL, and is kept while a pod subscribes;
   * then it is released, and the channel starts again in a new epoch. So reads never create
   * lasting state, and a client whose cursor names a released epoch gets a reset, never
   * another history's events.
   */
  position(channel: ChannelName): Promise<StreamPosition>;
  /**
   * The channel went back below `seen` within its epoch: the backend lost a tail it had
   * acknowledged (a Redis restarted from an older snapshot, a replica promoted before it had
   * the last writes). Its next offsets would repeat ones already delivered with other events,
   * so the broker starts a new epoch for the channel unless it is already in another epoch or
   * not below `seen`. Returns the position after. Optional: a broker whose positions cannot
   * go back (in-process) has nothing to do.
   *
   * With `options.conflict`, the proof is stronger than a count: an offset `seen` covers was
   * seen carrying other data than it carries now, so the channel went back *and* was published
   * past where it was. Then the broker starts a new epoch whatever its offset, unless the
   * channel already left `seen.epoch`.
   */
  rebase?(
    channel: ChannelName,
    seen: StreamPosition,
    options?: { readonly conflict?: boolean },
  ): Promise<StreamPosition>;
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
