/**
 * Per-tick fan-out of live messages to a pod's streams.
 *
 * Live messages are not written as they arrive: each channel collects the messages of this
 * tick (every I/O callback of one event-loop turn), and the flush (a `setImmediate`) fans them
 * out at its end, one write per connection however many events arrived. Each event still gets
 * its own `id:` with the full cursor, in channel order; slow-client bounds are checked on
 * every write, as before.
 */
import { type ChannelName, cursorEntry, joinCursor } from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";
import { SharedChunk } from "./connection.ts";
import type { CursorTags } from "./cursor-tags.ts";
import type { LocalChannel } from "./local-channels.ts";
import type { Metrics } from "./metrics.ts";
import { encodeData, encodeId } from "./sse-encoder.ts";
import type { SseStream } from "./sse-stream.ts";

/** One live event a pod wrote to its streams, for tracing (see `HubOptions.onDelivered`). */
export interface Delivery {
  readonly channel: ChannelName;
  readonly epoch: string;
  readonly offset: number;
  /** The publish request's id, when the publisher gave one. */
  readonly requestId: string | undefined;
  /** From the broker accepting it to this write, ms (publisher's clock to this pod's). */
  readonly latencyMs: number;
  /** This pod's streams on the channel when it was written. */
  readonly streams: number;
}

export interface FanOutOptions {
  readonly metrics: Metrics;
  readonly tags: CursorTags;
  readonly now: () => number;
  readonly onDelivered?: ((delivery: Delivery) => void) | undefined;
}

export class FanOut {
  readonly #metrics: Metrics;
  readonly #tags: CursorTags;
  readonly #now: () => number;
  readonly #onDelivered: ((delivery: Delivery) => void) | undefined;
  /** Whether anyone wants live messages' latency: skips the clock read when nobody does. */
  readonly #timed: boolean;
  /** Channels with a batch waiting for this tick's fan-out. */
  #dirtyChannels: LocalChannel[] = [];
  /** Streams with output waiting for this tick's write. */
  #dirtyStreams: SseStream[] = [];
  #flushScheduled = false;
  readonly #flushNow = () => this.#flush();

  constructor(options: FanOutOptions) {
    this.#metrics = options.metrics;
    this.#tags = options.tags;
    this.#now = options.now;
    this.#onDelivered = options.onDelivered;
    this.#timed = options.metrics.deliveryLatency !== undefined || this.#onDelivered !== undefined;
  }

  /** Adds `message` to its channel's batch for the end of this tick. */
  deliver(state: LocalChannel, message: BrokerMessage): void {
    if (state.batch.length === 0) this.#dirtyChannels.push(state);
    state.batch.push(message);
    this.#scheduleFlush();
  }

  /** `stream` has output waiting: its {@link SseStream.flush} runs at the end of this tick. */
  queue(stream: SseStream): void {
    this.#dirtyStreams.push(stream);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushNow);
  }

  #flush(): void {
    this.#flushScheduled = false;
    const channels = this.#dirtyChannels;
    this.#dirtyChannels = [];
    for (const state of channels) this.#fanOut(state);
    const streams = this.#dirtyStreams;
    this.#dirtyStreams = [];
    for (const stream of streams) stream.flush();
  }

  /**
   * Fans one channel's batch out. Encoded once per channel: each event's `data:` block once,
   * and for the streams that carry only this channel and are exactly at the batch's start
   * (nearly all of them), the whole batch — `id:` lines included, since their cursors are
   * equal — once, as one shared buffer written as it is to each of their connections. Other
   * streams (several channels, starting, behind) get the same blocks event by event, with
   * their own cursor, queued and written once at the end of the tick.
   */
  #fanOut(state: LocalChannel): void {
    const messages = state.batch;
    state.batch = [];
    const first = messages[0];
    if (first === undefined) return;
    const blocks = messages.map((m) => encodeData(m.data));
    let shared: { chunk: SharedChunk; lastEntry: string } | null | undefined;
    let sent = 0;
    for (const [stream, index] of state.streams) {
      if (stream.channels.length === 1) {
        if (shared === undefined) shared = this.#sharedBatch(state.name, messages, blocks);
        if (
          shared !== null &&
          stream.deliverShared(
            shared.chunk,
            first.epoch,
            first.offset,
            messages.length,
            shared.lastEntry,
          )
        ) {
          sent += messages.length;
          continue;
        }
      }
      for (let i = 0; i < messages.length; i++) {
        const m = messages[i] as BrokerMessage;
        if (stream.deliver(index, m.epoch, m.offset, blocks[i] as string)) sent++;
      }
    }
    if (sent === 0) return;
    this.#metrics.eventsSent(sent);
    if (this.#timed) this.#timeBatch(state, messages);
  }

  /**
   * Publish→delivery latency of the batch's live messages (those that carry when they were
   * published; backfilled ones do not), once per event, not per stream.
   */
  #timeBatch(state: LocalChannel, messages: readonly BrokerMessage[]): void {
    const now = this.#now();
    for (const m of messages) {
      if (m.publishedAt === undefined) continue;
      const latencyMs = now - m.publishedAt;
      this.#metrics.deliveryLatency?.(latencyMs / 1000);
      this.#onDelivered?.({
        channel: state.name,
        epoch: m.epoch,
        offset: m.offset,
        requestId: m.requestId,
        latencyMs,
        streams: state.streams.size,
      });
    }
  }

  /**
   * What a single-channel stream at the batch's start receives: each event's `id:` (the
   * one-entry cursor) and block. Null unless the batch is one epoch and contiguous.
   */
  #sharedBatch(
    channel: ChannelName,
    messages: readonly BrokerMessage[],
    blocks: readonly string[],
  ): { chunk: SharedChunk; lastEntry: string } | null {
    const first = messages[0] as BrokerMessage;
    const prefix = this.#tags.prefix(channel, first.epoch);
    let text = "";
    let entry = "";
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as BrokerMessage;
      if (m.epoch !== first.epoch || m.offset !== first.offset + i) return null;
      entry = cursorEntry(prefix, m.offset);
      text += encodeId(joinCursor([entry])) + blocks[i];
    }
    return { chunk: new SharedChunk(text), lastEntry: entry };
  }
}
