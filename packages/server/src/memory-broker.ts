/**
 * The in-process broker of embedded mode (no Redis). Several brokers may share one
 * {@link MemoryBus}, which is how tests run several "pods" in one process.
 */
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { Broker, BrokerListener, BrokerMessage } from "./broker.ts";
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

/** Positions, history and subscribers shared by the brokers of one process. */
export class MemoryBus {
  /** Changes whenever the bus is created: a restarted process has lost its history. */
  readonly epoch: string = Math.random().toString(36).slice(2, 10);
  readonly #offsets = new Map<ChannelName, number>();
  readonly #history = new Map<ChannelName, Retained[]>();
  readonly #subscribers = new Map<ChannelName, Set<MemoryBroker>>();
  readonly #retention: HistoryRetention;
  readonly #now: () => number;

  constructor(options: { retention?: Partial<HistoryRetention>; now?: () => number } = {}) {
    this.#retention = { ...DEFAULT_RETENTION, ...options.retention };
    this.#now = options.now ?? Date.now;
  }

  publish(channel: ChannelName, data: string): StreamPosition {
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

  async publish(channel: ChannelName, data: string): Promise<StreamPosition> {
    if (this.#closed) throw new Error("broker is closed");
    return this.bus.publish(channel, data);
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
