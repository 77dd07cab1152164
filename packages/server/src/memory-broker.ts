/**
 * The in-process broker of embedded mode (no Redis). Several brokers may share one
 * {@link MemoryBus}, which is how tests run several "pods" in one process.
 */
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import {
  type Broker,
  type BrokerListener,
  type BrokerMessage,
  type Idempotency,
  IdempotencyConflict,
  idempotencyOf,
  type PublishOptions,
  type PublishResult,
  requestIdOf,
} from "./broker.ts";
import { ChannelTable, type ChannelTableStats } from "./channel-table.ts";
import type { HistoryPage, HistoryRetention, HistoryStore } from "./history-store.ts";

interface Remembered extends StreamPosition {
  readonly expiresAt: number;
  readonly fingerprint: string;
}

/** Idempotency keys a {@link MemoryBus} remembers at most, by default. */
export const DEFAULT_MAX_IDEMPOTENCY_KEYS = 100_000;

export interface MemoryBusOptions {
  retention?: Partial<HistoryRetention>;
  /**
   * How long a channel nobody uses keeps its epoch and offset, in ms, counted from its last
   * publish, position read or subscriber leaving (while subscribed it is kept). Default
   * {@link DEFAULT_CHANNEL_IDLE_TTL_MS} (10 minutes).
   */
  idleTtlMs?: number;
  /**
   * Channels held at most. Past it, a new channel releases the least recently used one
   * without subscribers; when all have subscribers, it is refused
   * ({@link ChannelCapacityError}). Default {@link DEFAULT_MAX_CHANNELS}.
   */
  maxChannels?: number;
  /**
   * History bytes (event JSON plus ~190 bytes each, and ~190 per channel retaining any: what
   * the heap really spends) held at most over every channel; past it the oldest events of the
   * least recently published channels go first. Default {@link DEFAULT_MAX_HISTORY_BYTES} (64 MiB).
   */
  maxHistoryBytes?: number;
  /**
   * How often expired history and unused channels are released, in ms; 0 = never by itself
   * (the owner calls {@link MemoryBus.sweep}). Default 1000.
   */
  sweepIntervalMs?: number;
  /** Clock for history ages, idle times and idempotency windows, for tests. Default `Date.now`. */
  now?: () => number;
  /**
   * Idempotency keys remembered at most (over every channel). When full, the oldest key is
   * forgotten before its window ends: a retry with it would publish again. Default
   * {@link DEFAULT_MAX_IDEMPOTENCY_KEYS}: about 40 MB when full (≈ 370 bytes a key, measured
   * with the service's 43-character keys on a 50-character channel).
   */
  maxIdempotencyKeys?: number;
}

/**
 * Positions, history and subscribers shared by the brokers of one process, bounded (see
 * {@link ChannelTable} for the policy) and swept on a timer.
 */
export class MemoryBus {
  /** Changes whenever the bus is created: a restarted process has lost its history. */
  readonly epoch: string = Math.random().toString(36).slice(2, 10);
  readonly #channels: ChannelTable<MemoryBroker>;
  /**
   * `<channel> <key>` → the position published with it, oldest first (insertion order). With
   * one window for every key that is also expiry order, so expired keys are swept from the
   * front; a lookup checks the expiry itself, so a longer-lived key in front only delays the
   * sweep. Bounded by `#maxIdempotencyKeys`.
   */
  readonly #idempotency = new Map<string, Remembered>();
  readonly #maxIdempotencyKeys: number;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryBusOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#channels = new ChannelTable(`${this.epoch}-`, {
      retention: options.retention,
      idleTtlMs: options.idleTtlMs,
      maxChannels: options.maxChannels,
      maxHistoryBytes: options.maxHistoryBytes,
      now: this.#now,
    });
    this.#maxIdempotencyKeys = Math.max(
      1,
      options.maxIdempotencyKeys ?? DEFAULT_MAX_IDEMPOTENCY_KEYS,
    );
    const interval = options.sweepIntervalMs ?? 1_000;
    if (interval > 0) {
      this.#timer = setInterval(() => this.sweep(), interval);
      this.#timer.unref();
    }
  }

  /**
   * Publishes `data` on `channel`, or, when `idempotency` names a key already published within
   * its window, returns that publish's position as a duplicate and publishes nothing.
   * `requestId` travels with the live message ({@link BrokerMessage.requestId}).
   * @throws {ChannelCapacityError} for a new channel past the cap.
   */
  publish(
    channel: ChannelName,
    data: string,
    idempotency?: Idempotency | null,
    requestId?: string,
  ): PublishResult {
    if (!idempotency) return { ...this.#publish(channel, data, requestId), duplicate: false };
    // Channel names have no spaces, so `<channel> <key>` is unambiguous.
    const id = `${channel} ${idempotency.key}`;
    const now = this.#now();
    const seen = this.#idempotency.get(id);
    if (seen && seen.expiresAt > now) {
      if (seen.fingerprint !== idempotency.fingerprint) throw new IdempotencyConflict();
      return { epoch: seen.epoch, offset: seen.offset, duplicate: true };
    }
    if (seen) this.#idempotency.delete(id);
    const position = this.#publish(channel, data, requestId);
    const { fingerprint, windowMs } = idempotency;
    this.#remember(id, { ...position, expiresAt: now + windowMs, fingerprint }, now);
    return { ...position, duplicate: false };
  }

  /** How many idempotency keys are remembered now (expired ones may still count). */
  get idempotencyKeyCount(): number {
    return this.#idempotency.size;
  }

  /** Channels held, and the events and bytes of history retained over all of them. */
  get stats(): ChannelTableStats {
    return this.#channels.stats;
  }

  /** Whether the bus holds state for `channel` (looking does not count as a use). */
  holds(channel: ChannelName): boolean {
    return this.#channels.has(channel);
  }

  /** Drops expired history and releases unused channels. Runs on the timer; public for tests. */
  sweep(): void {
    this.#channels.sweep();
  }

  /** Stops the sweep timer. */
  close(): void {
    clearInterval(this.#timer);
  }

  #remember(id: string, entry: Remembered, now: number): void {
    for (const [key, remembered] of this.#idempotency) {
      if (remembered.expiresAt > now) break;
      this.#idempotency.delete(key);
    }
    while (this.#idempotency.size >= this.#maxIdempotencyKeys) {
      const oldest = this.#idempotency.keys().next();
      if (oldest.done) break;
      this.#idempotency.delete(oldest.value);
    }
    this.#idempotency.set(id, entry);
  }

  #publish(channel: ChannelName, data: string, requestId: string | undefined): StreamPosition {
    const record = this.#channels.use(channel);
    const offset = ++record.offset;
    const message: BrokerMessage = { channel, epoch: record.epoch, offset, data };
    this.#channels.retain(record, message);
    // Deliver after the publisher's call returns, as a networked broker would, so that a
    // publish made from inside a delivery never re-enters the hub. The live message carries
    // when and by which request it was published; history, as Redis's, does not.
    if (record.subscribers !== null) {
      const live: BrokerMessage = { ...message, publishedAt: this.#now(), requestId };
      for (const broker of record.subscribers) queueMicrotask(() => broker.deliver(live));
    }
    return { epoch: record.epoch, offset };
  }

  /** @throws {ChannelCapacityError} for a new channel past the cap. */
  position(channel: ChannelName): StreamPosition {
    const record = this.#channels.use(channel);
    return { epoch: record.epoch, offset: record.offset };
  }

  read(channel: ChannelName, after: number, limit: number): HistoryPage {
    return this.#channels.read(channel, after, limit);
  }

  /** @throws {ChannelCapacityError} for a new channel past the cap. */
  add(channel: ChannelName, broker: MemoryBroker): void {
    this.#channels.join(channel, broker);
  }

  remove(channel: ChannelName, broker: MemoryBroker): void {
    this.#channels.leave(channel, broker);
  }

  /** How many brokers subscribe to `channel` (the in-memory `PUBSUB NUMSUB`). */
  subscriberCount(channel: ChannelName): number {
    return this.#channels.peek(channel)?.subscribers?.size ?? 0;
  }
}

export interface MemoryBrokerOptions {
  /** The bus to share with other brokers. Default: a bus of its own, made with `busOptions`. */
  bus?: MemoryBus;
  /** Options of the broker's own bus (without `bus`); the broker closes that bus with itself. */
  busOptions?: MemoryBusOptions;
}

export class MemoryBroker implements Broker, HistoryStore {
  readonly bus: MemoryBus;
  /** Whether this broker made its bus (and so stops the bus's timer on close). */
  readonly #ownsBus: boolean;
  #listener: BrokerListener = () => {};
  readonly #channels = new Set<ChannelName>();
  #closed = false;

  constructor(options: MemoryBrokerOptions = {}) {
    this.#ownsBus = options.bus === undefined;
    this.bus = options.bus ?? new MemoryBus(options.busOptions);
  }

  async publish(
    channel: ChannelName,
    data: string,
    options?: PublishOptions,
  ): Promise<PublishResult> {
    if (this.#closed) throw new Error("broker is closed");
    return this.bus.publish(channel, data, idempotencyOf(options), requestIdOf(options));
  }

  async subscribe(channel: ChannelName): Promise<void> {
    if (this.#closed) throw new Error("broker is closed");
    this.#channels.add(channel);
    this.bus.add(channel, this);
  }

  async unsubscribe(channel: ChannelName): Promise<void> {
    this.#channels.delete(channel);
    this.bus.remove(channel, this);
  }

  async position(channel: ChannelName): Promise<StreamPosition> {
    return this.bus.position(channel);
  }

  async read(channel: ChannelName, after: number, limit: number): Promise<HistoryPage> {
    return this.bus.read(channel, after, limit);
  }

  setListener(listener: BrokerListener): void {
    this.#listener = listener;
  }

  ready(): boolean {
    return !this.#closed;
  }

  /** Called by the bus. */
  deliver(message: BrokerMessage): void {
    if (this.#channels.has(message.channel)) this.#listener(message);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const channel of this.#channels) this.bus.remove(channel, this);
    this.#channels.clear();
    if (this.#ownsBus) this.bus.close();
  }
}
