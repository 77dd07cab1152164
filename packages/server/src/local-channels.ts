/**
 * Which streams listen to which channels on this pod: one {@link LocalChannel} per channel with
 * at least one local stream, subscribed on the broker while it has one.
 */
import type { ChannelName } from "@realtime/protocol";
import type { Broker, BrokerMessage } from "./broker.ts";
import { ChannelSequencer } from "./channel-sequencer.ts";
import type { SseStream } from "./sse-stream.ts";

export interface LocalChannel {
  readonly name: ChannelName;
  /** Each stream of the channel, with the channel's index among that stream's channels. */
  readonly streams: Map<SseStream, number>;
  /** Resolves when the broker confirmed the subscription. */
  readonly subscribed: Promise<void>;
  /** Keeps the live messages of this channel contiguous on this pod. */
  readonly sequencer: ChannelSequencer;
  /** Messages released in this tick, fanned out together at its end (see `FanOut`). */
  batch: BrokerMessage[];
  /** A rebase of this channel is under way (one at a time). */
  rebasing: boolean;
}

export class LocalChannels {
  readonly #broker: Broker;
  readonly #channels = new Map<ChannelName, LocalChannel>();

  constructor(broker: Broker) {
    this.#broker = broker;
  }

  get size(): number {
    return this.#channels.size;
  }

  get(channel: ChannelName): LocalChannel | undefined {
    return this.#channels.get(channel);
  }

  /** A snapshot of the channels held now. */
  all(): LocalChannel[] {
    return [...this.#channels.values()];
  }

  /**
   * Whether `state` is still this pod's state of its channel: one every stream left (and that
   * a later join replaced) must not be acted on by work that began before.
   */
  holds(state: LocalChannel): boolean {
    return this.#channels.get(state.name) === state;
  }

  /** Adds `stream` (its channel number `index`) to `channel`, subscribing on first use. */
  join(channel: ChannelName, stream: SseStream, index: number): LocalChannel {
    let state = this.#channels.get(channel);
    if (!state) {
      const subscribed = this.#broker.subscribe(channel);
      // Avoid an unhandled rejection if every stream leaves before anyone awaits it.
      subscribed.catch(() => {});
      state = {
        name: channel,
        streams: new Map(),
        subscribed,
        sequencer: new ChannelSequencer(),
        batch: [],
        rebasing: false,
      };
      this.#channels.set(channel, state);
    }
    state.streams.set(stream, index);
    return state;
  }

  /** Removes `stream` from its channels, unsubscribing those it was the last of. */
  leave(stream: SseStream): void {
    for (const channel of stream.channels) {
      const state = this.#channels.get(channel);
      if (!state) continue;
      state.streams.delete(stream);
      if (state.streams.size === 0) {
        this.#channels.delete(channel);
        this.#broker.unsubscribe(channel).catch(() => {});
      }
    }
  }
}
