/**
 * Sans-IO bookkeeping of who listens to what: reference-counted channel subscriptions, handlers
 * by event type, reset listeners, and the dispatch to them. Knows nothing of streams.
 */
import type { ChannelName, RealtimeEvent } from "@realtime/protocol";

/** Handlers of one channel subscription. */
export interface ChannelHandlers<E extends RealtimeEvent = RealtimeEvent> {
  /** Every application event of the channel, in stream order. */
  onEvent?(event: E): void;
  /**
   * The stream could not replay what this channel sent while the client was away (`reason`:
   * `trimmed`, `epoch_changed`, `unknown_cursor`, `gap`). Refetch the channel's state.
   */
  onReset?(reason: string): void;
  /**
   * The server no longer grants this channel (its access rules changed while the stream was
   * open). The subscription stays but receives nothing until the app calls `connect()` (e.g.
   * once access is granted again), or every subscription of the channel ends and a new one starts.
   */
  onDenied?(): void;
}

export class ChannelRegistry<E extends RealtimeEvent> {
  readonly #channels = new Map<ChannelName, Set<ChannelHandlers<E>>>();
  readonly #byType = new Map<string, Set<(event: E) => void>>();
  readonly #all = new Set<(event: E) => void>();
  readonly #resets = new Set<(channel: ChannelName, reason: string) => void>();

  /** Adds a subscription; returns its remover (idempotent). */
  add(channel: ChannelName, handlers: ChannelHandlers<E>): () => void {
    let set = this.#channels.get(channel);
    if (!set) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    // A wrapper, so the same handlers object subscribed twice counts twice.
    const entry: ChannelHandlers<E> = {
      onEvent: (event) => handlers.onEvent?.(event),
      onReset: (reason) => handlers.onReset?.(reason),
      onDenied: () => handlers.onDenied?.(),
    };
    set.add(entry);
    return () => {
      const current = this.#channels.get(channel);
      if (!current?.delete(entry)) return;
      if (current.size === 0) this.#channels.delete(channel);
    };
  }

  /** Channels with at least one subscription, in the order they were first subscribed. */
  channels(): ChannelName[] {
    return [...this.#channels.keys()];
  }

  has(channel: string): channel is ChannelName {
    return this.#channels.has(channel as ChannelName);
  }

  on(type: string, handler: (event: E) => void): () => void {
    let set = this.#byType.get(type);
    if (!set) {
      set = new Set();
      this.#byType.set(type, set);
    }
    const wrapper = (event: E) => handler(event);
    set.add(wrapper);
    return () => {
      set.delete(wrapper);
      if (set.size === 0 && this.#byType.get(type) === set) this.#byType.delete(type);
    };
  }

  onEvent(handler: (event: E) => void): () => void {
    const wrapper = (event: E) => handler(event);
    this.#all.add(wrapper);
    return () => this.#all.delete(wrapper);
  }

  onReset(handler: (channel: ChannelName, reason: string) => void): () => void {
    const wrapper = (channel: ChannelName, reason: string) => handler(channel, reason);
    this.#resets.add(wrapper);
    return () => this.#resets.delete(wrapper);
  }

  /**
   * Hands `event` to its channel's subscriptions, then to the handlers of its type, then to
   * the catch-all handlers. Events of a channel nobody subscribes to any more (the stream
   * still carries it until it re-opens) are dropped.
   */
  dispatchEvent(event: E): void {
    const subscriptions = this.#channels.get(event.channel);
    if (!subscriptions) return;
    for (const entry of [...subscriptions]) isolate(() => entry.onEvent?.(event));
    for (const handler of [...(this.#byType.get(event.type) ?? [])]) isolate(() => handler(event));
    for (const handler of [...this.#all]) isolate(() => handler(event));
  }

  dispatchReset(channel: ChannelName, reason: string): void {
    const subscriptions = this.#channels.get(channel);
    if (!subscriptions) return;
    for (const entry of [...subscriptions]) isolate(() => entry.onReset?.(reason));
    for (const handler of [...this.#resets]) isolate(() => handler(channel, reason));
  }

  /** Tells `channel`'s subscriptions that the server no longer grants it. */
  dispatchDenied(channel: ChannelName): void {
    const subscriptions = this.#channels.get(channel);
    if (!subscriptions) return;
    for (const entry of [...subscriptions]) isolate(() => entry.onDenied?.());
  }
}

/**
 * Runs an app callback so that its exception neither skips the other handlers nor breaks the
 * stream, yet is not swallowed: it is rethrown on its own task, where the runtime reports it.
 */
export function isolate(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
