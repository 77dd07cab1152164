/**
 * Sans-IO bookkeeping of who listens to what: reference-counted channel subscriptions, handlers
 * by event type, reset listeners, and the dispatch to them. Knows nothing of streams.
 *
 * No event twice: each subscription remembers the position (from the event ids) of the last
 * event it got, and skips any event at or before it. That is what lets a subscription start
 * after a history page (it has "seen" the page) while the stream delivers the page's events to
 * others, and lets the stream re-open a channel from an earlier position without the channel's
 * other subscriptions (or the type and catch-all handlers) seeing anything again.
 */
import type { ChannelName, RealtimeEvent } from "@realtime/protocol";
import {
  alreadySeen,
  type ChannelPosition,
  channelCursor,
  positionIn,
} from "./channel-position.ts";

/** Handlers of one channel subscription. */
export interface ChannelHandlers<E extends RealtimeEvent = RealtimeEvent> {
  /**
   * Every application event of the channel, in stream order, each once. `id` is the event's id
   * on this channel alone, the `id` a history page gives it (usable as `before`); null when the
   * stream's id did not say.
   */
  onEvent?(event: E, id: string | null): void;
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

interface Entry<E extends RealtimeEvent> {
  readonly handlers: ChannelHandlers<E>;
  /** The last event this subscription got (or the end of the page it started after). */
  seen: ChannelPosition | null;
}

interface ChannelState<E extends RealtimeEvent> {
  readonly entries: Set<Entry<E>>;
  /** The last event handed to the type and catch-all handlers. */
  seen: ChannelPosition | null;
}

export class ChannelRegistry<E extends RealtimeEvent> {
  readonly #channels = new Map<ChannelName, ChannelState<E>>();
  readonly #byType = new Map<string, Set<(event: E) => void>>();
  readonly #all = new Set<(event: E) => void>();
  readonly #resets = new Set<(channel: ChannelName, reason: string) => void>();

  /**
   * Adds a subscription; returns its remover (idempotent). `seen`: the position it has already
   * had everything up to (a history page's end), so the stream's events up to there skip it.
   */
  add(channel: ChannelName, handlers: ChannelHandlers<E>, seen: ChannelPosition | null = null) {
    let state = this.#channels.get(channel);
    if (!state) {
      state = { entries: new Set(), seen: null };
      this.#channels.set(channel, state);
    }
    // An entry per call, so the same handlers object subscribed twice counts twice.
    const entry: Entry<E> = { handlers, seen };
    state.entries.add(entry);
    return (): void => {
      const current = this.#channels.get(channel);
      if (!current?.entries.delete(entry)) return;
      if (current.entries.size === 0) this.#channels.delete(channel);
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
   * the catch-all handlers — each only if it has not had it yet (by the channel's position in
   * `id`, the stream's cursor for the event). Events of a channel nobody subscribes to any more
   * (the stream still carries it until it re-opens) are dropped.
   */
  dispatchEvent(event: E, id: string | null = null): void {
    const state = this.#channels.get(event.channel);
    if (!state) return;
    const position = positionIn(id, event.channel);
    const channelId = position && channelCursor(event.channel, position);
    for (const entry of [...state.entries]) {
      if (position) {
        if (alreadySeen(position, entry.seen)) continue;
        entry.seen = position;
      }
      isolate(() => entry.handlers.onEvent?.(event, channelId));
    }
    if (position) {
      if (alreadySeen(position, state.seen)) return;
      state.seen = position;
    }
    for (const handler of [...(this.#byType.get(event.type) ?? [])]) isolate(() => handler(event));
    for (const handler of [...this.#all]) isolate(() => handler(event));
  }

  /**
   * A reset breaks the channel's sequence: what follows starts wherever the server is now, so
   * the positions remembered so far no longer say what is old.
   */
  dispatchReset(channel: ChannelName, reason: string): void {
    const state = this.#channels.get(channel);
    if (!state) return;
    state.seen = null;
    for (const entry of state.entries) entry.seen = null;
    for (const entry of [...state.entries]) isolate(() => entry.handlers.onReset?.(reason));
    for (const handler of [...this.#resets]) isolate(() => handler(channel, reason));
  }

  /** Tells `channel`'s subscriptions that the server no longer grants it. */
  dispatchDenied(channel: ChannelName): void {
    const state = this.#channels.get(channel);
    if (!state) return;
    for (const entry of [...state.entries]) isolate(() => entry.handlers.onDenied?.());
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
