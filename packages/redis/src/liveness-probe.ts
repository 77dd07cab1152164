/**
 * Proves the subscriber side live end to end: a token published through the command
 * connection must come back through the subscriber connection, on every shard. This catches
 * what keepalives do not: a subscriber connection that answers but receives nothing (e.g. a
 * half-open socket, ioredis#1451, or a node that left the cluster, centrifugo#1189).
 */
import type { PubSubTransport } from "./pubsub-transport.ts";
import { withTimeout } from "./timeout.ts";

export class LivenessProbe {
  readonly #transport: PubSubTransport;
  readonly #timeoutMs: number;
  readonly #channels = new Set<string>();
  readonly #waiters = new Map<string, () => void>();
  #seq = 0;

  constructor(transport: PubSubTransport, timeoutMs: number) {
    this.#transport = transport;
    this.#timeoutMs = timeoutMs;
  }

  /** Whether `channel` is a probe channel (its messages go to {@link receive}). */
  owns(channel: string): boolean {
    return this.#channels.has(channel);
  }

  receive(token: string): void {
    this.#waiters.get(token)?.();
  }

  /** Subscribes the probe channels, publishes a token on each and waits until all came back. */
  async run(): Promise<void> {
    const channels = this.#transport.probeChannels();
    if (channels.length === 0) throw new Error("no probe channel yet (no cluster topology)");
    const stale = [...this.#channels].filter((c) => !channels.includes(c));
    for (const channel of channels) this.#channels.add(channel);
    await withTimeout(this.#transport.subscribe(channels), this.#timeoutMs, "probe subscribe");
    if (stale.length > 0) {
      for (const channel of stale) this.#channels.delete(channel);
      await this.#transport.unsubscribe(stale);
    }
    await Promise.all(channels.map((channel) => this.#roundTrip(channel)));
  }

  close(): void {
    this.#waiters.clear();
  }

  async #roundTrip(channel: string): Promise<void> {
    const token = `probe:${++this.#seq}`;
    const received = new Promise<void>((resolve) => this.#waiters.set(token, resolve));
    try {
      await this.#transport.publishRaw(channel, token);
      await withTimeout(received, this.#timeoutMs, `probe on ${channel}`);
    } finally {
      this.#waiters.delete(token);
    }
  }
}
