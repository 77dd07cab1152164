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
} from "./broker.ts";
import {
  DEFAULT_RETENTION,
  type HistoryPage,
  type HistoryRetention,
  type HistoryStore,
} from "./history-store.ts";

interface Retained {
  readonly message: BrokerMessage;
  readonly at: number;
}

interface Remembered extends StreamPosition {
  readonly expiresAt: number;
  readonly fingerprint: string;
}

/** Idempotency keys a {@link MemoryBus} remembers at most, by default. */
export const DEFAULT_MAX_IDEMPOTENCY_KEYS = 100_000;

export interface MemoryBusOptions {
  retention?: Partial<HistoryRetention>;
  /** Clock for history ages and idempotency windows, for tests. Default `Date.now`. */
  now?: () => number;
  /**
   * Idempotency keys remembered at most (over every channel). When full, the oldest key is
   * forgotten before its window ends: a retry with it would publish again. Default
   * {@link DEFAULT_MAX_IDEMPOTENCY_KEYS}: about 40 MB when full (≈ 370 bytes a key, measured
   * with the service's 43-character keys on a 50-character channel).
   */
  maxIdempotencyKeys?: number;
}

/** Positions, history and subscribers shared by the brokers of one process. */
export class MemoryBus {
  /** Changes whenever the bus is created: a restarted process has lost its history. */
  readonly epoch: string = Math.random().toString(36).slice(2, 10);
  readonly #offsets = new Map<ChannelName, number>();
  readonly #history = new Map<ChannelName, Retained[]>();
  readonly #subscribers = new Map<ChannelName, Set<MemoryBroker>>();
  /**
   * `<channel> <key>` → the position published with it, oldest first (insertion order). With
   * one window for every key that is also expiry order, so expired keys are swept from the
   * front; a lookup checks the expiry itself, so a longer-lived key in front only delays the
   * sweep. Bounded by `#maxIdempotencyKeys`.
   */
  readonly #idempotency = new Map<string, Remembered>();
  readonly #maxIdempotencyKeys: number;
  readonly #retention: HistoryRetention;
  readonly #now: () => number;

  constructor(options: MemoryBusOptions = {}) {
    this.#retention = { ...DEFAULT_RETENTION, ...options.retention };
    this.#now = options.now ?? Date.now;
    this.#maxIdempotencyKeys = Math.max(
      1,
      options.maxIdempotencyKeys ?? DEFAULT_MAX_IDEMPOTENCY_KEYS,
    );
  }

  /**
   * Publishes `data` on `channel`, or, when `idempotency` names a key already published within
   * its window, returns that publish's position as a duplicate and publishes nothing.
   */
  publish(channel: ChannelName, data: string, idempotency?: Idempotency | null): PublishResult {
    if (!idempotency) return { ...this.#publish(channel, data), duplicate: false };
    // Channel names have no spaces, so `<channel> <key>` is unambiguous.
    const id = `${channel} ${idempotency.key}`;
    const now = this.#now();
    const seen = this.#idempotency.get(id);
    if (seen && seen.expiresAt > now) {
      if (seen.fingerprint !== idempotency.fingerprint) throw new IdempotencyConflict();
      return { epoch: seen.epoch, offset: seen.offset, duplicate: true };
    }
    if (seen) this.#idempotency.delete(id);
    const position = this.#publish(channel, data);
    const { fingerprint, windowMs } = idempotency;
    this.#remember(id, { ...position, expiresAt: now + windowMs, fingerprint }, now);
    return { ...position, duplicate: false };
  }

  /** How many idempotency keys are remembered now (expired ones may still count). */
  get idempotencyKeyCount(): number {
    return this.#idempotency.size;
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

  #publish(channel: ChannelName, data: string): StreamPosition {
    const offset = (this.#offsets.get(channel) ?? 0) + 1;
    this.#offsets.set(channel, offset);
    const message: BrokerMessage = { channel, epoch: this.epoch, offset, data };
    this.#retain(message);
    const subscribers = this.#subscribers.get(channel);
    if (subscribers) {
      // Deliver after the publisher's call returns, as a networked broker would, so that a
      // publish made from inside a delivery never re-enters the hub.
      for (const broker of subscribers) queueMicrotask(() => broker.deliver(message));
    }
    return { epoch: this.epoch, offset };
  }

  position(channel: ChannelName): StreamPosition {
    return { epoch: this.epoch, offset: this.#offsets.get(channel) ?? 0 };
  }

  read(channel: ChannelName, after: number, limit: number): HistoryPage {
    const kept = this.#trim(channel);
    const top = this.#offsets.get(channel) ?? 0;
    if (!kept || kept.length === 0) return { epoch: this.epoch, top, messages: [] };
    // Offsets in the ring are contiguous, so the start is an index computation, not a scan.
    const first = (kept[0] as Retained).message.offset;
    const start = Math.max(0, after + 1 - first);
    const messages = kept.slice(start, start + Math.max(0, limit)).map((r) => r.message);
    return { epoch: this.epoch, top, messages };
  }

  #retain(message: BrokerMessage): void {
    let kept = this.#history.get(message.channel);
    if (!kept) {
      kept = [];
      this.#history.set(message.channel, kept);
    }
    kept.push({ message, at: this.#now() });
    // Trim in batches: shifting a 10k array on every publish would cost O(size) per event.
    const size = this.#retention.size;
    if (kept.length > size + Math.max(64, size >> 2)) kept.splice(0, kept.length - size);
  }

  /** Drops what is past its age; returns what is left. */
  #trim(channel: ChannelName): Retained[] | undefined {
    const kept = this.#history.get(channel);
    if (!kept) return undefined;
    const oldest = this.#now() - this.#retention.ttlMs;
    let drop = Math.max(0, kept.length - this.#retention.size);
    while (drop < kept.length && (kept[drop] as Retained).at < oldest) drop++;
    if (drop > 0) kept.splice(0, drop);
    return kept;
  }

  add(channel: ChannelName, broker: MemoryBroker): void {
    let set = this.#subscribers.get(channel);
    if (!set) {
      set = new Set();
      this.#subscribers.set(channel, set);
    }
    set.add(broker);
  }

  remove(channel: ChannelName, broker: MemoryBroker): void {
    const set = this.#subscribers.get(channel);
    if (!set) return;
    set.delete(broker);
    if (set.size === 0) this.#subscribers.delete(channel);
  }

  /** How many brokers subscribe to `channel` (the in-memory `PUBSUB NUMSUB`). */
  subscriberCount(channel: ChannelName): number {
    return this.#subscribers.get(channel)?.size ?? 0;
  }
}

export interface MemoryBrokerOptions {
  /** The bus to share with other brokers. Default: a bus of its own. */
  bus?: MemoryBus;
}

export class MemoryBroker implements Broker, HistoryStore {
  readonly bus: MemoryBus;
  #listener: BrokerListener = () => {};
  readonly #channels = new Set<ChannelName>();
  #closed = false;

  constructor(options: MemoryBrokerOptions = {}) {
    this.bus = options.bus ?? new MemoryBus();
  }

  async publish(
    channel: ChannelName,
    data: string,
    options?: PublishOptions,
  ): Promise<PublishResult> {
    if (this.#closed) throw new Error("broker is closed");
    return this.bus.publish(channel, data, idempotencyOf(options));
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
  }
}
