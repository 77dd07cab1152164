/**
 * One SSE stream: a connection carrying one or more channels, and the cursor that says how far
 * it has got in each. Created and driven by the `Hub`, through a {@link StreamHost}.
 */
import {
  type ChannelName,
  type CloseCode,
  cursorEntry,
  joinCursor,
  ResetReason,
} from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";
import type { Connection, SharedChunk } from "./connection.ts";
import { closeBlock, readyBlock, resetBlock } from "./control-events.ts";
import { encodeData, encodeId, encodeRetry, HEARTBEAT } from "./sse-encoder.ts";

/** What the hub decided for one channel of a stream that is starting. */
export interface ChannelStart {
  readonly epoch: string;
  /** Offset the stream starts after (events with a higher offset are delivered). */
  readonly offset: number;
  /** `channelTag + epochTag` of the channel's current epoch. */
  readonly tagPrefix: string;
  /** Set when the stream cannot continue from the client's cursor for this channel. */
  readonly reset?: ResetReason;
}

/** Hooks the stream calls back into its hub. */
export interface StreamHost {
  now(): number;
  tagPrefix(channel: ChannelName, epoch: string): string;
  /** Whether the pod left `epoch` of `channel` for a newer one (see ChannelSequencer). */
  isRetired(channel: ChannelName, epoch: string): boolean;
  /** A write left the connection's queue above its byte bound. */
  overflowed(stream: SseStream): void;
  /** The stream fell too far behind while starting and must be closed for a resume. */
  insufficient(stream: SseStream): void;
  /** The stream has output waiting: call its {@link SseStream.flush} at the end of this tick. */
  queue(stream: SseStream): void;
  /** A `reset` of one of the stream's channels is being written (its client lost continuity). */
  reset(reason: ResetReason): void;
}

export interface SseStreamOptions {
  /** The hub's side of the stream (kept off the hub's public API). */
  readonly host: StreamHost;
  /** Unique per stream within this process. */
  readonly id: number;
  readonly userId: string;
  readonly userName: string;
  /** The stream's channels, without duplicates; channel `index` is a position in it. */
  readonly channels: readonly ChannelName[];
  /** When the stream's token expires (ms since epoch), or Infinity. */
  readonly expiresAt: number;
  /** A write that leaves more than this unsent drops the stream as slow. */
  readonly maxQueuedBytes: number;
}

/** A replay pauses for the peer to drain once this many bytes are queued. */
const REPLAY_HIGH_WATER = 64 * 1024;

/**
 * Most live messages a stream holds while it starts (waiting for a replay slot, or replaying);
 * their bytes are bounded too, by the stream's slow-client bound (`maxQueuedBytes`).
 */
const MAX_BUFFERED = 10_000;

interface Buffered {
  readonly index: number;
  readonly epoch: string;
  readonly offset: number;
  readonly block: string;
}

export class SseStream {
  /** Unique per stream within this process (for presence and logs). */
  readonly id: number;
  readonly userId: string;
  /** Display name from the token, if any. */
  readonly userName: string;
  readonly channels: readonly ChannelName[];
  /** When the stream's token expires (ms since epoch), or Infinity. */
  readonly expiresAt: number;
  /** When writes started to report backpressure (0 = not stalled). */
  stalledSince = 0;
  lastWriteAt = 0;

  readonly #host: StreamHost;
  readonly #maxQueuedBytes: number;
  readonly #epochs: string[];
  readonly #offsets: number[];
  readonly #entries: string[];
  #connection: Connection | null = null;
  #buffer: Buffered[] | null = [];
  /** Bytes of the `data:` blocks in {@link #buffer}. */
  #bufferedBytes = 0;
  /** Live events of this tick not yet written: written together by {@link flush}. */
  #pending = "";
  /** Replayed events not yet written: written together by {@link flushReplay}. */
  #replayText = "";
  /** UTF-8 bytes of {@link #replayText}. */
  #replayBytes = 0;
  #ended = false;
  readonly #waiters: Array<() => void> = [];
  readonly #endListeners: Array<() => void> = [];

  constructor(options: SseStreamOptions) {
    this.#host = options.host;
    this.id = options.id;
    this.userId = options.userId;
    this.userName = options.userName;
    this.channels = options.channels;
    this.expiresAt = options.expiresAt;
    this.#maxQueuedBytes = options.maxQueuedBytes;
    this.#epochs = this.channels.map(() => "");
    this.#offsets = this.channels.map(() => 0);
    this.#entries = this.channels.map(() => "");
  }

  /** The stream's current cursor (what its last `id:` said). */
  get cursor(): string {
    return joinCursor(this.#entries);
  }

  get connection(): Connection | null {
    return this.#connection;
  }

  /** Bytes accepted for this stream and not yet on the wire: its connection's queue and this tick's. */
  get queuedBytes(): number {
    return (this.#connection?.bufferedBytes ?? 0) + Buffer.byteLength(this.#pending);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Starts writing: retry hint, resets, the initial cursor (on the `ready` event, so a client
   * that reconnects before any event still resumes from here). Live messages stay buffered
   * until {@link goLive}; in between, the hub's {@link Replayer} sends what the client missed
   * ({@link replay}, paced by {@link backedUp} and {@link drained}).
   */
  start(connection: Connection, starts: readonly ChannelStart[], retryMs: number): void {
    this.#connection = connection;
    connection.onDrain(() => {
      this.stalledSince = 0;
      this.#wake();
    });
    connection.onClose(() => this.#finish());
    let head = encodeRetry(retryMs);
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i] as ChannelStart;
      this.#epochs[i] = start.epoch;
      this.#offsets[i] = start.offset;
      this.#entries[i] = cursorEntry(start.tagPrefix, start.offset);
      if (start.reset) head += this.#reset(i, start.reset);
    }
    // The starting cursor rides on a named `ready` event rather than an id-only block: both set
    // the browser's reconnect id, but only an event lets a client that reconnects by itself
    // read it (EventSource has no lastEventId property; MessageEvent has).
    this.#write(`${head}${readyBlock(this.channels, this.cursor, this.#host.now())}`);
  }

  /** Whether the stream can no longer be written to (ended, or its peer is gone). */
  get gone(): boolean {
    return this.#ended || this.#connection === null || this.#connection.closed;
  }

  /**
   * One replayed event of channel `index` (in order, in the channel's start epoch). It is
   * written with the events replayed after it, by {@link flushReplay}, which the replayer
   * calls once {@link backedUp} says so and before it waits for anything.
   */
  replay(index: number, message: BrokerMessage): void {
    const text = this.#advance(index, message.epoch, message.offset, encodeData(message.data));
    if (text === null) return;
    this.#replayText += text;
    this.#replayBytes += Buffer.byteLength(text);
  }

  /** Writes the events {@link replay} collected, in one write. */
  flushReplay(): void {
    const text = this.#replayText;
    if (text.length === 0) return;
    this.#replayText = "";
    this.#replayBytes = 0;
    this.#write(text);
  }

  /**
   * A replay of channel `index` cannot go on (history lost what it still needed): writes a
   * `reset` carrying the cursor as moved to `offset` in `epoch`, so that the client resumes
   * past the hole, and the channel continues live from there.
   */
  abandonReplay(index: number, reason: ResetReason, epoch: string, offset: number): void {
    if (this.#ended) return;
    this.flushReplay();
    const channel = this.channels[index] as ChannelName;
    this.#epochs[index] = epoch;
    this.#offsets[index] = offset;
    this.#entries[index] = cursorEntry(this.#host.tagPrefix(channel, epoch), offset);
    this.#write(this.#reset(index, reason, this.cursor));
  }

  /**
   * The peer has a replay page's worth queued, counting the replayed events not yet written:
   * time to {@link flushReplay}, then (if still so) wait for {@link drained}. Also once the
   * queue is past the slow-client bound, so that the write that crosses it is the one an
   * event-by-event replay would have made (and drops the stream just the same).
   */
  get backedUp(): boolean {
    const queued = (this.#connection?.bufferedBytes ?? 0) + this.#replayBytes;
    return queued >= REPLAY_HIGH_WATER || queued > this.#maxQueuedBytes;
  }

  /** Resolves when the connection drained below its high-water mark, or closed. */
  drained(): Promise<void> {
    if (this.gone) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
    });
  }

  /**
   * Ends the start: writes what arrived live meanwhile (in one write: it is bounded by the
   * slow-client bound already), then delivers as it comes.
   */
  goLive(): void {
    this.flushReplay();
    const buffer = this.#buffer ?? [];
    this.#buffer = null;
    this.#bufferedBytes = 0;
    let text = "";
    for (let i = 0; i < buffer.length; i++) {
      const b = buffer[i] as Buffered;
      const next = this.#advance(b.index, b.epoch, b.offset, b.block);
      if (next !== null) text += next;
    }
    if (text.length > 0) this.#write(text);
  }

  /**
   * Delivers one event of channel number `index` (pre-encoded `data:` block, shared by every
   * stream of the channel). Skips duplicates; a gap or a new epoch gets an explicit reset.
   */
  deliver(index: number, epoch: string, offset: number, block: string): boolean {
    if (this.#ended) return false;
    if (this.#buffer) {
      this.#bufferedBytes += block.length;
      if (this.#buffer.length >= MAX_BUFFERED || this.#bufferedBytes > this.#maxQueuedBytes) {
        // Too far behind while starting — however long it waited for a replay slot, it holds
        // no more than a stream's queue may: let the client come back and resume from its
        // cursor (which has moved with whatever was replayed).
        this.#host.insufficient(this);
        return false;
      }
      this.#buffer.push({ index, epoch, offset, block });
      return false;
    }
    const text = this.#advance(index, epoch, offset, block);
    if (text === null) return false;
    if (this.#pending.length === 0) this.#host.queue(this);
    this.#pending += text;
    // Write early rather than let the queue pass the slow-client bound by more than one event
    // (the write checks the bound, exactly as an event-by-event write would).
    const connection = this.#connection;
    if (connection && connection.bufferedBytes + this.#pending.length > this.#maxQueuedBytes) {
      this.flush();
    }
    return true;
  }

  /**
   * Delivers `count` consecutive events of the stream's only channel as one shared chunk,
   * `first` being the offset of the first. Only when that is exactly what {@link deliver}
   * would write event by event: a single-channel stream that is live, has nothing pending and
   * whose last offset in `epoch` is `first - 1`. Returns false (nothing done) otherwise.
   */
  deliverShared(
    chunk: SharedChunk,
    epoch: string,
    first: number,
    count: number,
    lastEntry: string,
  ): boolean {
    if (
      this.#ended ||
      this.#buffer !== null ||
      this.#pending.length !== 0 ||
      this.#offsets.length !== 1 ||
      this.#epochs[0] !== epoch ||
      this.#offsets[0] !== first - 1
    ) {
      return false;
    }
    const connection = this.#connection;
    if (!connection) return false;
    // Past the slow-client bound: the caller goes event by event, which stops at the bound.
    if (connection.bufferedBytes + chunk.bytes.length > this.#maxQueuedBytes) return false;
    this.#offsets[0] = first + count - 1;
    this.#entries[0] = lastEntry;
    this.#afterWrite(
      connection,
      connection.writeShared ? connection.writeShared(chunk) : connection.write(chunk.text),
    );
    return true;
  }

  /** Writes what {@link deliver} queued in this tick, in one write. */
  flush(): void {
    const text = this.#pending;
    if (text.length === 0) return;
    this.#pending = "";
    this.#write(text);
  }

  /**
   * Moves the cursor of channel `index` to `offset` and returns the text of that event (with
   * a reset before it on a gap or a new epoch), or null for a duplicate.
   */
  #advance(index: number, epoch: string, offset: number, block: string): string | null {
    let prefix = "";
    if (epoch !== this.#epochs[index]) {
      // A message the stream took in while starting, of an epoch the channel has left since:
      // stale (the stream would go back to it, then forward again, with two resets).
      if (this.#host.isRetired(this.channels[index] as ChannelName, epoch)) return null;
      prefix = this.#reset(index, ResetReason.EpochChanged);
      this.#epochs[index] = epoch;
    } else {
      const last = this.#offsets[index] as number;
      if (offset <= last) return null;
      if (offset !== last + 1) prefix = this.#reset(index, ResetReason.Gap);
    }
    this.#offsets[index] = offset;
    this.#entries[index] = cursorEntry(
      this.#host.tagPrefix(this.channels[index] as ChannelName, epoch),
      offset,
    );
    return `${prefix}${encodeId(this.cursor)}${block}`;
  }

  /** The `reset` of channel `index` for `reason` (with `cursor`, moving the client's), counted. */
  #reset(index: number, reason: ResetReason, cursor?: string): string {
    this.#host.reset(reason);
    return resetBlock(this.channels[index] as ChannelName, reason, cursor);
  }

  #wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }

  /**
   * Calls `listener` once when the stream ends: closed or dropped by the server, or its
   * connection gone — whichever comes first. (A graceful close to a peer that does not read
   * may leave the connection open a while longer; the stream is over all the same.)
   */
  onEnd(listener: () => void): void {
    if (this.#ended || this.#connection?.closed) queueMicrotask(listener);
    else this.#endListeners.push(listener);
  }

  /** The stream is over: wake whatever waits for a drain, tell the end listeners. */
  #finish(): void {
    this.#ended = true;
    this.#wake();
    for (const listener of this.#endListeners.splice(0)) listener();
  }

  /** Writes a heartbeat comment (keeps proxies and NATs from timing the stream out). */
  heartbeat(): void {
    this.#write(HEARTBEAT);
  }

  /**
   * Ends the stream with a `close` control event carrying `code`, and a `retry:` hint
   * (jittered by the hub) so that many clients closed at once do not return at once.
   * `channels` names the channels the close is about (see `closeBlock`).
   */
  close(code: CloseCode, retryMs: number, channels?: readonly ChannelName[]): void {
    if (this.#ended) return;
    const connection = this.#connection;
    // Events queued in this tick go out before the goodbye.
    this.flush();
    this.#ended = true;
    if (!connection) {
      this.#finish();
      return;
    }
    connection.write(closeBlock(code, retryMs, this.#host.now(), channels));
    connection.end();
    this.#finish();
  }

  /** Drops the connection without a goodbye (the peer is not reading anyway). */
  destroy(): void {
    this.#pending = "";
    this.#connection?.destroy();
    this.#finish();
  }

  #write(chunk: string): void {
    const connection = this.#connection;
    if (!connection || this.#ended) return;
    this.#afterWrite(connection, connection.write(chunk));
  }

  #afterWrite(connection: Connection, ok: boolean): void {
    const now = this.#host.now();
    this.lastWriteAt = now;
    if (!ok) {
      if (this.stalledSince === 0) this.stalledSince = now;
      if (connection.bufferedBytes > this.#maxQueuedBytes) this.#host.overflowed(this);
    }
  }
}
