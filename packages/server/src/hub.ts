/**
 * The in-process SSE hub: admission and the life of streams on this pod — opening (subscribe,
 * plan the resume, replay, go live), heartbeats, slow-client bounds, token expiry and draining.
 * Which streams listen to which channels is `LocalChannels` (`local-channels.ts`); the per-tick
 * fan-out of broker messages to them is `FanOut` (`fan-out.ts`); keeping each channel
 * contiguous (sequencer, backfill, rebase, position checks) is `ChannelRepair`
 * (`channel-repair.ts`).
 *
 * Every event takes the broker path — `publish` hands it to the broker, and delivery happens
 * when the broker hands it back — so there is one ordering and one place to test.
 */
import { type ChannelName, CloseCode, type StreamPosition, userChannel } from "@realtime/protocol";
import {
  type Broker,
  ChannelCapacityError,
  type PublishOptions,
  type PublishResult,
} from "./broker.ts";
import { ChannelRepair } from "./channel-repair.ts";
import type { Connection } from "./connection.ts";
import { CursorTags } from "./cursor-tags.ts";
import { ExpiryQueue } from "./expiry-queue.ts";
import { FanOut } from "./fan-out.ts";
import type { HistoryStore } from "./history-store.ts";
import { type EventInput, HubError } from "./hub-error.ts";
import type { HubOptions, OpenStreamRequest, StreamLifecycle } from "./hub-options.ts";
import { LocalChannels } from "./local-channels.ts";
import { type Metrics, noopMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { Replayer } from "./replayer.ts";
import { planResume, type ResumePlan } from "./resume.ts";
import { SharedHistory, SharedPositions } from "./shared-reads.ts";
import { SseStream, type StreamHost } from "./sse-stream.ts";

export type { EventInput, HubErrorCode } from "./hub-error.ts";
export { HubError } from "./hub-error.ts";
export type { HubOptions, OpenStreamRequest, StreamLifecycle } from "./hub-options.ts";

/** `sse_disconnects_total` reasons for the closes the hub initiates. */
const CLOSE_REASONS: Partial<Record<CloseCode, string>> = {
  [CloseCode.Shutdown]: "shutdown",
  [CloseCode.TokenExpired]: "token_expired",
  [CloseCode.InsufficientState]: "insufficient_state",
  [CloseCode.Forbidden]: "forbidden",
};

export class Hub {
  readonly #broker: Broker;
  readonly #publisher: Publisher;
  readonly #history: HistoryStore | undefined;
  /** Position reads of streams opening at once, shared per channel. */
  readonly #positions: SharedPositions;
  readonly #maxReplay: number;
  readonly #replayer: Replayer;
  readonly #positionTimer: NodeJS.Timeout | undefined;
  readonly #metrics: Metrics;
  readonly #maxConnections: number;
  readonly #heartbeatIntervalMs: number;
  readonly #retryMs: number;
  readonly #retryJitterMs: number;
  readonly #maxQueuedBytes: number;
  readonly #maxStallMs: number;
  readonly #random: () => number;
  readonly #channels: LocalChannels;
  readonly #tags = new CursorTags();
  readonly #fanOut: FanOut;
  readonly #repair: ChannelRepair;
  readonly #streams = new Set<SseStream>();
  readonly #sweepTimer: NodeJS.Timeout;
  /** Streams whose token expires, closed when it does. */
  readonly #expiries = new ExpiryQueue<SseStream>(
    () => this.now(),
    (stream) => {
      if (this.#streams.has(stream)) this.#close(stream, CloseCode.TokenExpired);
    },
  );
  /** What the hub's streams call back into: the hub's internals, kept off its public API. */
  readonly #host: StreamHost;
  #opening = 0;
  #streamIds = 0;
  readonly #lifecycle: StreamLifecycle[] = [];
  readonly #announced = new WeakSet<SseStream>();
  #accepting = true;
  readonly now: () => number;

  constructor(options: HubOptions) {
    this.#broker = options.broker;
    this.#publisher = new Publisher(options.broker, {
      metrics: options.metrics,
      now: options.now,
    });
    // Streams opening or resuming at once share their position and history reads.
    this.#history = options.history && new SharedHistory(options.history);
    this.#positions = new SharedPositions(options.broker);
    this.#maxReplay = options.maxReplay ?? 10_000;
    this.#replayer = new Replayer({
      history: this.#history,
      pageSize: options.replayPageSize ?? 64,
      maxConcurrent: options.maxConcurrentReplays ?? 32,
      maxPerUser: options.maxReplaysPerUser ?? 2,
      failed: (stream) => this.#close(stream, CloseCode.InsufficientState),
    });
    this.#metrics = options.metrics ?? noopMetrics;
    this.#maxConnections = options.maxConnections ?? 10_000;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? 15_000;
    this.#retryMs = options.retryMs ?? 2_000;
    this.#retryJitterMs = options.retryJitterMs ?? 3_000;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 1024 * 1024;
    this.#maxStallMs = options.maxStallMs ?? 10_000;
    this.now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#channels = new LocalChannels(this.#broker);
    this.#fanOut = new FanOut({
      metrics: this.#metrics,
      tags: this.#tags,
      now: this.now,
      onDelivered: options.onDelivered,
    });
    this.#repair = new ChannelRepair({
      broker: this.#broker,
      history: options.history,
      metrics: this.#metrics,
      channels: this.#channels,
      deliver: (state, message) => this.#fanOut.deliver(state, message),
      strangerHistoryMs: options.strangerHistoryMs,
    });
    this.#host = {
      now: () => this.now(),
      tagPrefix: (channel, epoch) => this.#tags.prefix(channel, epoch),
      isRetired: (channel, epoch) =>
        this.#channels.get(channel)?.sequencer.isRetired(epoch) ?? false,
      overflowed: (stream) => this.#dropSlow(stream),
      insufficient: (stream) => this.#close(stream, CloseCode.InsufficientState),
      queue: (stream) => this.#fanOut.queue(stream),
      reset: (reason) => this.#metrics.streamReset?.(reason),
    };
    this.#broker.setListener((message) => this.#repair.receive(message));
    this.#sweepTimer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 1_000);
    this.#sweepTimer.unref();
    const positionCheck = options.positionCheckIntervalMs ?? 15_000;
    if (positionCheck > 0) {
      this.#positionTimer = setInterval(() => void this.checkPositions(), positionCheck);
      this.#positionTimer.unref();
    }
    // After the broker's live connection comes back, messages may have been lost meanwhile.
    this.#broker.onReconnect?.(() => void this.checkPositions({ verifyContent: true }));
  }

  /** Open SSE streams on this hub. */
  get connectionCount(): number {
    return this.#streams.size;
  }

  /** Channels with at least one local stream. */
  get channelCount(): number {
    return this.#channels.size;
  }

  /**
   * The pod's fan-out queue: bytes accepted for its streams and not yet written to the network
   * (each stream's socket queue, bounded by `maxQueuedBytes`, plus this tick's batch). One pass
   * over the streams: read it at scrape time, not per event.
   */
  get queuedBytes(): number {
    let total = 0;
    for (const stream of this.#streams) total += stream.queuedBytes;
    return total;
  }

  /** Streams whose writes report backpressure now (the slowest readers). */
  get stalledCount(): number {
    let stalled = 0;
    for (const stream of this.#streams) if (stream.stalledSince !== 0) stalled++;
    return stalled;
  }

  /** Resuming streams replaying now, and waiting for a replay slot. */
  get replays(): { readonly running: number; readonly waiting: number } {
    return { running: this.#replayer.running, waiting: this.#replayer.waiting };
  }

  /** Whether the hub takes new streams (false once draining). */
  get accepting(): boolean {
    return this.#accepting;
  }

  /**
   * Refuses new streams from now on (readiness turns false) without closing open ones: the
   * first step of a shutdown, taken before anything that has to wait.
   */
  stopAccepting(): void {
    this.#accepting = false;
  }

  /**
   * Publishes an event on `channel` through the broker. Resolves with the event's position once
   * the broker holds it; rejects with a {@link HubError} when it does not. With
   * `options.idempotencyKey`, a repeat within the key's window publishes nothing and resolves
   * with the first publish's position and `duplicate: true` ({@link PublishOptions}).
   */
  async publish(
    channel: ChannelName,
    input: EventInput,
    options?: PublishOptions,
  ): Promise<PublishResult> {
    return this.#publisher.publish(channel, input, options);
  }

  /**
   * Registers hooks called when a stream is live (after its replay) and when it is gone, for
   * every stream of this hub. They run synchronously on the hub's path: keep them cheap and let
   * them hand any I/O off (presence batches its Redis writes).
   */
  onStream(hooks: StreamLifecycle): void {
    this.#lifecycle.push(hooks);
  }

  /** The open streams (a snapshot), e.g. for presence refreshes. */
  streams(): SseStream[] {
    return [...this.#streams];
  }

  /** Publishes an event on the private channel of `userId`. */
  sendToUser(userId: string, input: EventInput, options?: PublishOptions): Promise<PublishResult> {
    return this.publish(userChannel(userId), input, options);
  }

  /**
   * Opens a stream: subscribes its channels (buffering live messages), works out where each
   * channel starts from the client's cursor, then connects, replays what the client missed (a
   * page at a time, when a replay slot is free) and goes live. Rejects with a
   * {@link HubError} before anything is sent when the stream cannot be served.
   */
  async open(request: OpenStreamRequest): Promise<SseStream> {
    if (!this.#accepting) throw new HubError("shutting_down", "the server is shutting down");
    if (this.#streams.size + this.#opening >= this.#maxConnections) {
      throw new HubError("at_capacity", "the server holds its maximum number of streams");
    }
    const channels = [...new Set(request.channels)];
    const stream = new SseStream({
      host: this.#host,
      id: ++this.#streamIds,
      userId: request.userId,
      userName: request.userName ?? request.userId,
      channels,
      expiresAt: request.expiresAt ?? Number.POSITIVE_INFINITY,
      maxQueuedBytes: this.#maxQueuedBytes,
    });
    this.#opening++;
    let plan: ResumePlan;
    try {
      // Join first: from here on, live messages are buffered in the stream.
      const states = channels.map((channel, index) => this.#channels.join(channel, stream, index));
      await Promise.all(states.map((s) => s.subscribed));
      const asked = states.map((state) => state.sequencer.epoch);
      const positions = await Promise.all(channels.map((c) => this.#positions.position(c)));
      states.forEach((state, i) => {
        const top = positions[i] as StreamPosition;
        this.#repair.apply(state, state.sequencer.start(top.epoch, top.offset, asked[i] ?? null));
      });
      plan = await planResume(channels, positions, request.cursor ?? null, {
        history: this.#history,
        maxReplay: this.#maxReplay,
        tagPrefix: (channel, epoch) => this.#tags.prefix(channel, epoch),
      });
    } catch (cause) {
      this.#channels.leave(stream);
      if (cause instanceof HubError) throw cause;
      if (cause instanceof ChannelCapacityError) {
        throw new HubError("at_capacity", cause.message, { cause });
      }
      throw new HubError("broker_unavailable", "could not subscribe to the broker", { cause });
    } finally {
      this.#opening--;
    }
    if (request.signal?.aborted || !this.#accepting) {
      this.#channels.leave(stream);
      throw new HubError("shutting_down", "the stream was abandoned before it started");
    }
    const connection = request.connect();
    this.#streams.add(stream);
    connection.onClose(() => this.#remove(stream, "client"));
    this.#closeWhenExpired(stream, connection);
    stream.start(connection, plan.starts, this.#retryHint());
    if (request.receivedAt !== undefined) {
      this.#metrics.streamOpened?.((performance.now() - request.receivedAt) / 1000);
    }
    await this.#replayer.run(stream, plan.replays);
    stream.goLive();
    if (!stream.ended && this.#streams.has(stream)) {
      this.#announced.add(stream);
      for (const hooks of this.#lifecycle) hooks.opened(stream);
    }
    return stream;
  }

  /**
   * Stops taking streams and closes every open one with `shutdown`, each at a random moment in
   * the next `windowMs` so reconnects spread out. Resolves when all are closed.
   */
  async drain(windowMs: number): Promise<void> {
    this.#accepting = false;
    const closing = [...this.#streams].map(
      (stream) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.#close(stream, CloseCode.Shutdown);
            resolve();
          }, this.#random() * windowMs);
          stream.connection?.onClose(() => {
            clearTimeout(timer);
            resolve();
          });
        }),
    );
    await Promise.all(closing);
  }

  /** Stops timers and closes every stream at once. */
  async close(): Promise<void> {
    this.#accepting = false;
    clearInterval(this.#sweepTimer);
    clearInterval(this.#positionTimer);
    this.#expiries.close();
    for (const stream of [...this.#streams]) this.#close(stream, CloseCode.Shutdown);
  }

  /**
   * Closes `stream` with `token_expired` when its `expiresAt` comes, on the expiry queue's
   * timer (one for all streams). The sweep alone (every second) could come up to a whole
   * interval after `expiresAt`: a caller that leaves a one-second margin before the token's
   * real expiry would then have none for a late timer or the close's way to the client, and
   * the stream could outlive its token. The sweep stays the backstop (and what fake-clock
   * tests drive).
   */
  #closeWhenExpired(stream: SseStream, connection: Connection): void {
    if (stream.expiresAt === Number.POSITIVE_INFINITY) return;
    connection.onClose(this.#expiries.add(stream, stream.expiresAt));
  }

  /** Heartbeats, stall and expiry checks. Runs on a timer; public so tests can drive it. */
  sweep(): void {
    const now = this.now();
    for (const stream of this.#streams) {
      if (now >= stream.expiresAt) {
        this.#close(stream, CloseCode.TokenExpired);
      } else if (stream.stalledSince !== 0 && now - stream.stalledSince >= this.#maxStallMs) {
        this.#dropSlow(stream);
      } else if (now - stream.lastWriteAt >= this.#heartbeatIntervalMs) {
        stream.heartbeat();
      }
    }
  }

  /**
   * Ends `stream` because `channels` (some of its own) are no longer granted to its user: a
   * `close` with code 3503 `forbidden` naming them, so the client drops them and opens a stream
   * of the rest. Nothing more is delivered on it from this call on. A stream already gone is left
   * alone.
   */
  revoke(stream: SseStream, channels: readonly ChannelName[]): void {
    if (!this.#streams.has(stream)) return;
    this.#close(stream, CloseCode.Forbidden, channels);
  }

  /**
   * Compares every local channel's last delivered position with the broker's and backfills
   * what is missing (see {@link ChannelRepair}). Runs on a timer and after the broker
   * reconnects; public for tests.
   */
  checkPositions(options: { readonly verifyContent?: boolean } = {}): Promise<void> {
    return this.#repair.checkPositions(options);
  }

  #remove(stream: SseStream, reason: string): void {
    if (!this.#streams.delete(stream)) return;
    this.#channels.leave(stream);
    this.#metrics.connectionClosed(reason);
    // Only streams that were announced as opened are announced as closed.
    if (this.#announced.delete(stream)) for (const hooks of this.#lifecycle) hooks.closed(stream);
  }

  #close(stream: SseStream, code: CloseCode, channels?: readonly ChannelName[]): void {
    stream.close(code, this.#retryHint(), channels);
    this.#remove(stream, CLOSE_REASONS[code] ?? "closed");
    // A graceful end completes once the peer has read what is queued: a peer that does not
    // read would keep the socket, its queue and whatever waits on it, outside every count.
    // It gets as long as a stalled stream does, then is dropped.
    const connection = stream.connection;
    if (connection && !connection.closed) {
      const timer = setTimeout(() => connection.destroy(), this.#maxStallMs);
      timer.unref();
      connection.onClose(() => clearTimeout(timer));
    }
  }

  #dropSlow(stream: SseStream): void {
    stream.destroy();
    this.#remove(stream, "slow");
  }

  #retryHint(): number {
    return this.#retryMs + Math.floor(this.#random() * this.#retryJitterMs);
  }
}
