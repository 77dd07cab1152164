/**
 * The in-process broker of embedded mode (no Redis). Several brokers may share one
 * {@link MemoryBus}, which is how tests run several "pods" in one process.
 */
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { Broker, BrokerListener, BrokerMessage } from "./broker.ts";

/** Positions and subscribers shared by the brokers of one process. */
export class MemoryBus {
  /** Changes whenever the bus is created: a restarted process has lost its history. */
  readonly epoch: string = Math.random().toString(36).slice(2, 10);
  readonly #offsets = new Map<ChannelName, number>();
  readonly #subscribers = new Map<ChannelName, Set<MemoryBroker>>();

  publish(channel: ChannelName, data: string): StreamPosition {
    const offset = (this.#offsets.get(channel) ?? 0) + 1;
    this.#offsets.set(channel, offset);
    const message: BrokerMessage = { channel, epoch: this.epoch, offset, data };
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

export class MemoryBroker implements Broker {
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
