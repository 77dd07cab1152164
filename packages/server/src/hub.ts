/**
 * The in-process SSE hub: which streams listen to which channels on this pod, fan-out of
 * broker messages to them, heartbeats, slow-client bounds, token expiry and draining.
 *
 * Every event takes the broker path — `publish` hands it to the broker, and delivery happens
 * when the broker hands it back — so there is one ordering and one place to test.
 */
import {
  type ChannelName,
  CloseCode,
  channelTag,
  cursorEntry,
  epochTag,
  joinCursor,
  type StreamPosition,
  userChannel,
} from "@realtime/protocol";
import {
  type Broker,
  type BrokerMessage,
  ChannelCapacityError,
  type PublishOptions,
  type PublishResult,
} from "./broker.ts";
import { ChannelSequencer, type FetchRequest, type SequencerOutput } from "./channel-sequencer.ts";
import { type Connection, SharedChunk } from "./connection.ts";
import { readRange, STRANGER_HISTORY_MS, speaksFor } from "./history-range.ts";
import type { HistoryStore } from "./history-store.ts";
import { type EventInput, HubError } from "./hub-error.ts";
import { type Metrics, noopMetrics } from "./metrics.ts";
import { Publisher } from "./publisher.ts";
import { Replayer } from "./replayer.ts";
import { planResume, type ResumePlan } from "./resume.ts";
import { encodeData, encodeId } from "./sse-encoder.ts";
import { SseStream, type StreamHost } from "./sse-stream.ts";

export type { EventInput, HubErrorCode } from "./hub-error.ts";
export { HubError } from "./hub-error.ts";

export interface HubOptions {
  broker: Broker;
  /**
   * Where missed events are read back from (usually the broker itself). Without it, a client
   * that missed events gets a `reset`, and a pod that missed live messages cannot backfill.
   */
  history?: HistoryStore;
  /** Most events replayed to one channel of a resuming stream; further behind → reset. Default 10000. */
  maxReplay?: number;
  /** Events a replay reads from history per round trip (and holds in memory at once). Default 64. */
  replayPageSize?: number;
  /**
   * Replays running at once on this hub; more wait their turn (connected, live messages
   * buffered). Bounds the memory replays take. Default 32.
   */
  maxConcurrentReplays?: number;
  /** Replays of one user running at once; the user's others wait. Default 2. */
  maxReplaysPerUser?: number;
  /**
   * How often the pod compares each channel's last delivered position with the broker's, in
   * ms, to catch a lost last message. Default 15000; 0 disables.
   */
  positionCheckIntervalMs?: number;
  /** Default: counts nothing. */
  metrics?: Metrics;
  /** Streams this hub holds at most; more are refused with `at_capacity`. Default 10000. */
  maxConnections?: number;
  /** A heartbeat comment is written after this long without a write, in ms. Default 15000. */
  heartbeatIntervalMs?: number;
  /** Base of the `retry:` reconnect hint, in ms. Default 2000. */
  retryMs?: number;
  /** Random extra added to each `retry:` hint, in ms, so reconnects spread. Default 3000. */
  retryJitterMs?: number;
  /** A stream whose unsent bytes exceed this is dropped as slow. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** A stream whose writes stay backed up this long is dropped as slow, in ms. Default 10000. */
  maxStallMs?: number;
  /** How often streams are checked for heartbeat, stall and expiry, in ms. Default 1000. */
  sweepIntervalMs?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
  /** Randomness for jitter, for tests. Default `Math.random`. */
  random?: () => number;
}

/** Hooks into the life of every stream (see {@link Hub.onStream}). */
export interface StreamLifecycle {
  opened(stream: SseStream): void;
  closed(stream: SseStream): void;
}

export interface OpenStreamRequest {
  userId: string;
  /** Display name from the token; carried for presence. Default: the user id. */
  userName?: string;
  /** The channels, already validated and authorized by the caller. Duplicates are ignored. */
  channels: readonly ChannelName[];
  /** `Last-Event-ID` or `lastEventId` from the client, if any. */
  cursor?: string | null;
  /**
   * When the stream must end (ms since epoch): it is closed with `token_expired` then, on a
   * timer of its own. Default: never.
   */
  expiresAt?: number;
  /** Aborted when the client goes away while the stream is being prepared. */
  signal?: AbortSignal;
  /** Sends the response headers and returns the connection; called once the stream is ready. */
  connect: () => Connection;
}

interface ChannelState {
  readonly name: ChannelName;
  readonly streams: Map<SseStream, number>;
  /** Resolves when the broker confirmed the subscription. */
  readonly subscribed: Promise<void>;
  /** Keeps the live messages of this channel contiguous on this pod. */
  readonly sequencer: ChannelSequencer;
  /** Messages released in this tick, fanned out together at its end (see `#flush`). */
  batch: BrokerMessage[];
  /** A rebase of this channel is under way (one at a time). */
  rebasing: boolean;
}

/** `sse_disconnects_total` reasons for the closes the hub initiates. */
const CLOSE_REASONS: Partial<Record<CloseCode, string>> = {
  [CloseCode.Shutdown]: "shutdown",
  [CloseCode.TokenExpired]: "token_expired",
  [CloseCode.InsufficientState]: "insufficient_state",
};

/**
 * Cursor tag prefixes remembered (one per channel and epoch); past it the cache starts over.
 * Hot channels are back in it at their next event; 100,000 held ~15 MB for rooms an attacker
 * named once.
 */
const TAG_CACHE_ENTRIES = 10_000;
/** The longest delay `setTimeout` takes (a longer one fires at once): ~24.8 days. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A backfill whose history reads fail (Redis away, frozen, or its connection being replaced)
 * retries them for as long as they fail: the events are still in history, and the live path is
 * most likely down as well, so waiting costs the streams nothing they could have had — a
 * time bound turned a Redis frozen for 17 s into a `reset` with nothing lost (`npm run chaos`,
 * seed 5034). Only when this many live messages pile up behind the hole (the live path works,
 * history does not) is the hole given up on and released as a reset: as many as a channel's
 * history keeps by default, so what is held stays bounded.
 */
const BACKFILL_MAX_HELD = 10_000;
export class Hub implements StreamHost {
  readonly #broker: Broker;
  readonly #publisher: Publisher;
  readonly #history: HistoryStore | undefined;
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
  readonly #channels = new Map<ChannelName, ChannelState>();
  readonly #streams = new Set<SseStream>();
  readonly #tagCache = new Map<string, string>();
  readonly #sweepTimer: NodeJS.Timeout;
  /** Channels with a batch waiting for this tick's fan-out. */
  #dirtyChannels: ChannelState[] = [];
  /** Streams with output waiting for this tick's write. */
  #dirtyStreams: SseStream[] = [];
  #flushScheduled = false;
  readonly #flushNow = () => this.#flush();
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
    this.#history = options.history;
    this.#maxReplay = options.maxReplay ?? 10_000;
    this.#replayer = new Replayer({
      history: options.history,
      pageSize: options.replayPageSize ?? 64,
      maxConcurrent: options.maxConcurrentReplays ?? 32,
      maxPerUser: options.maxReplaysPerUser ?? 2,
      failed: (stream) => this.insufficient(stream),
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
    this.#broker.setListener((message) => this.#onMessage(message));
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
    const stream = new SseStream(
      this,
      ++this.#streamIds,
      request.userId,
      request.userName ?? request.userId,
      channels,
      request.expiresAt ?? Number.POSITIVE_INFINITY,
      this.#maxQueuedBytes,
    );
    this.#opening++;
    let plan: ResumePlan;
    try {
      // Join first: from here on, live messages are buffered in the stream.
      const states = channels.map((channel, index) => this.#join(channel, stream, index));
      await Promise.all(states.map((s) => s.subscribed));
      const asked = states.map((state) => state.sequencer.epoch);
      const positions = await Promise.all(channels.map((c) => this.#broker.position(c)));
      states.forEach((state, i) => {
        const top = positions[i] as StreamPosition;
        this.#apply(state, state.sequencer.start(top.epoch, top.offset, asked[i] ?? null));
      });
      plan = await planResume(channels, positions, request.cursor ?? null, {
        history: this.#history,
        maxReplay: this.#maxReplay,
        tagPrefix: (channel, epoch) => this.tagPrefix(channel, epoch),
      });
    } catch (cause) {
      this.#leave(stream);
      if (cause instanceof HubError) throw cause;
      if (cause instanceof ChannelCapacityError) {
        throw new HubError("at_capacity", cause.message, { cause });
      }
      throw new HubError("broker_unavailable", "could not subscribe to the broker", { cause });
    } finally {
      this.#opening--;
    }
    if (request.signal?.aborted || !this.#accepting) {
      this.#leave(stream);
      throw new HubError("shutting_down", "the stream was abandoned before it started");
    }
    const connection = request.connect();
    this.#streams.add(stream);
    connection.onClose(() => this.#remove(stream, "client"));
    this.#closeWhenExpired(stream, connection);
    stream.start(connection, plan.starts, this.#retryHint());
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
    for (const stream of [...this.#streams]) this.#close(stream, CloseCode.Shutdown);
  }

  /**
   * Closes `stream` with `token_expired` when its `expiresAt` comes, on a timer of its own. The
   * sweep alone (every second) could come up to a whole interval after `expiresAt`: a caller
   * that leaves a one-second margin before the token's real expiry would then have none for a
   * late timer or the close's way to the client, and the stream could outlive its token. The
   * sweep stays the backstop (and what fake-clock tests drive).
   */
  #closeWhenExpired(stream: SseStream, connection: Connection): void {
    const delay = stream.expiresAt - this.now();
    if (!(delay <= MAX_TIMER_MS)) return; // never (Infinity), or too far for one timer
    const timer = setTimeout(
      () => {
        if (this.#streams.has(stream)) this.#close(stream, CloseCode.TokenExpired);
      },
      Math.max(0, delay),
    );
    timer.unref();
    connection.onClose(() => clearTimeout(timer));
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

  /** Whether `channel` left `epoch` on this pod: its late messages must reach no stream. */
  isRetired(channel: ChannelName, epoch: string): boolean {
    return this.#channels.get(channel)?.sequencer.isRetired(epoch) ?? false;
  }

  tagPrefix(channel: ChannelName, epoch: string): string {
    const key = `${epoch} ${channel}`;
    let prefix = this.#tagCache.get(key);
    if (prefix === undefined) {
      if (this.#tagCache.size >= TAG_CACHE_ENTRIES) this.#tagCache.clear();
      prefix = channelTag(channel) + epochTag(epoch);
      this.#tagCache.set(key, prefix);
    }
    return prefix;
  }

  overflowed(stream: SseStream): void {
    this.#dropSlow(stream);
  }

  /**
   * Compares every local channel's last delivered position with the broker's and backfills
   * what is missing. Runs on a timer and after the broker reconnects; public for tests.
   */
  async checkPositions(options: { readonly verifyContent?: boolean } = {}): Promise<void> {
    const verify = options.verifyContent === true && this.#history !== undefined;
    const states = [...this.#channels.values()].filter(
      (s) => s.sequencer.top >= 0 && !s.sequencer.fetching,
    );
    // After a reconnect, live messages wait until the channel is checked: they may belong to
    // offsets a Redis that went back has reused.
    if (verify) for (const state of states) state.sequencer.pause();
    await Promise.all(
      states.map(async (state) => {
        try {
          const asked = { epoch: state.sequencer.epoch, top: state.sequencer.top };
          const top = await this.#broker.position(state.name);
          if (this.#channels.get(state.name) !== state) return;
          if (verify && (await this.#wentBackAndPast(state, top, asked))) {
            await this.#rebase(state, { epoch: top.epoch, offset: asked.top }, { conflict: true });
            return;
          }
          this.#apply(state, state.sequencer.observe(top.epoch, top.offset, asked));
        } catch {
          // The broker is away; the next check or reconnect tries again.
        } finally {
          if (verify && this.#channels.get(state.name) === state) {
            this.#apply(state, state.sequencer.resume());
          }
        }
      }),
    );
  }

  insufficient(stream: SseStream): void {
    this.#close(stream, CloseCode.InsufficientState);
  }

  queue(stream: SseStream): void {
    this.#dirtyStreams.push(stream);
    this.#scheduleFlush();
  }

  #onMessage(message: BrokerMessage): void {
    const state = this.#channels.get(message.channel);
    if (state) this.#apply(state, state.sequencer.receive(message));
  }

  /** Delivers what the sequencer released and starts the fetch it asked for. */
  #apply(state: ChannelState, output: SequencerOutput): void {
    for (const message of output.ready) this.#deliver(state, message);
    if (output.rebase) {
      const { epoch, offset, conflict } = output.rebase;
      void this.#rebase(state, { epoch, offset }, { conflict: conflict === true });
    }
    if (output.fetch) {
      // The generation lets the sequencer ignore a fetch an epoch change made stale.
      void this.#backfill(state, output.fetch, state.sequencer.generation);
    }
  }

  /**
   * Live messages are not written as they arrive: each channel collects the messages of this
   * tick (every I/O callback of one event-loop turn), and `#flush` (a `setImmediate`) fans them
   * out at its end, one write per connection however many events arrived. Each event still
   * gets its own `id:` with the full cursor, in channel order; slow-client bounds are checked
   * on every write, as before.
   */
  #deliver(state: ChannelState, message: BrokerMessage): void {
    if (state.batch.length === 0) this.#dirtyChannels.push(state);
    state.batch.push(message);
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
  #fanOut(state: ChannelState): void {
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
    if (sent > 0) this.#metrics.eventsSent(sent);
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
    const prefix = this.tagPrefix(channel, first.epoch);
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

  /**
   * The broker lost a tail of the channel that this pod had delivered: it moves the channel to
   * a new epoch (unless another pod did), and the sequencer follows; streams then reset the
   * channel on its next event, as for any lost history.
   */
  /**
   * After the broker's live path came back (a Redis restart among the causes): whether the
   * event history now holds at this pod's top offset is another than the one the pod released
   * there. A Redis restored from an older snapshot and then published past where it was shows
   * no gap and no offset below the pod's: only the data tells (found by `npm run chaos`).
   */
  async #wentBackAndPast(
    state: ChannelState,
    top: StreamPosition,
    asked: { readonly epoch: string | null; readonly top: number },
  ): Promise<boolean> {
    if (!this.#history || asked.top < 1 || top.epoch !== asked.epoch || top.offset < asked.top) {
      return false;
    }
    const page = await this.#history.read(state.name, asked.top - 1, 1);
    const there = page.messages[0];
    return (
      page.epoch === top.epoch &&
      there?.offset === asked.top &&
      state.sequencer.epoch === asked.epoch &&
      state.sequencer.differsAt(there.offset, there.data, there.life)
    );
  }

  async #rebase(
    state: ChannelState,
    seen: StreamPosition,
    options?: { readonly conflict?: boolean },
  ): Promise<void> {
    if (!this.#broker.rebase || state.rebasing) return;
    state.rebasing = true;
    try {
      const asked = { epoch: state.sequencer.epoch, top: state.sequencer.top };
      const top = await this.#broker.rebase(state.name, seen, options);
      // Counted only when the channel really left the epoch (the script declines when the
      // channel is not below `seen` after all).
      if (top.epoch !== seen.epoch) this.#metrics.brokerWentBack?.();
      if (this.#channels.get(state.name) === state) {
        this.#apply(state, state.sequencer.observe(top.epoch, top.offset, asked));
      }
    } catch {
      // The broker is away; the next check sees the same regression and tries again.
    } finally {
      state.rebasing = false;
    }
  }

  /**
   * Reads [after, until] of a channel from history for its sequencer: the entry at `after` (the
   * sequencer's top when it asked) is the one it checks it released; the rest fills the hole.
   */
  async #backfill(state: ChannelState, fetch: FetchRequest, generation: number): Promise<void> {
    const history = this.#history;
    let found: BrokerMessage[] = [];
    const current = () =>
      this.#channels.get(state.name) === state && state.sequencer.generation === generation;
    if (history) {
      let strangerSince: number | undefined;
      for (let pause = 50; ; pause = Math.min(pause * 2, 1_000)) {
        try {
          const read = await readRange(history, state.name, fetch);
          found = read.messages;
          if (speaksFor(read, fetch)) break;
          // A history that cannot speak for the live message that asked: most likely a master
          // that woke after its failover, answering reads it had buffered with its own fork
          // before it hears of the promotion (Cluster seed 9022: it "confirmed" the woken
          // master's event this pod released, the promoted replica's event at that offset
          // was never delivered, and no reset). Asked again, the slot's owner answers.
          strangerSince ??= Date.now();
          if (Date.now() - strangerSince >= STRANGER_HISTORY_MS || !current()) break;
        } catch {
          // A failed read says nothing about history: the connection may be being replaced
          // (a partition, a restart). Streams wait (the sequencer holds what came after the
          // hole) and the read is tried again (see BACKFILL_MAX_HELD). Found by `npm run chaos`
          // (a black-holed link: `gap` resets though history held everything).
          if (!current() || state.sequencer.held >= BACKFILL_MAX_HELD) break;
        }
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
    if (this.#channels.get(state.name) === state) {
      this.#apply(state, state.sequencer.filled(found, generation));
    }
  }

  #join(channel: ChannelName, stream: SseStream, index: number): ChannelState {
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

  #leave(stream: SseStream): void {
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

  #remove(stream: SseStream, reason: string): void {
    if (!this.#streams.delete(stream)) return;
    this.#leave(stream);
    this.#metrics.connectionClosed(reason);
    // Only streams that were announced as opened are announced as closed.
    if (this.#announced.delete(stream)) for (const hooks of this.#lifecycle) hooks.closed(stream);
  }

  #close(stream: SseStream, code: CloseCode): void {
    stream.close(code, this.#retryHint());
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
