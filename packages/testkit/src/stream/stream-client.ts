/**
 * The resumable SSE client of the multi-pod tests, over any {@link StreamTransport} (HTTP/1.1
 * by default, or a stream of a shared HTTP/2 connection through the nginx stack). It behaves
 * like a browser's `EventSource` where it matters for resuming — `lastEventId` changes only
 * when a whole block has arrived (a block cut by a disconnect is dropped), id-only blocks update
 * it too, `retry:` sets the reconnection time — and it records, per channel, the offset of every
 * event it got (decoded from the event's cursor `id:`), every `reset`, `close` event and status
 * code, across any number of reconnects to any pod.
 *
 * A test drives it by hand ({@link StreamClient.connect} to a pod, {@link StreamClient.close})
 * or lets it reconnect by itself like `EventSource` ({@link StreamClient.start}).
 */
import { setTimeout as delay } from "node:timers/promises";
import { channelTag, decodeCursor } from "@realtime/protocol";
import { type ChannelLog, positionOf } from "./channel-check.ts";
import { type Block, EventStreamParser } from "./event-stream-parser.ts";
import { http1, type StreamTransport } from "./transport.ts";

export interface ConnectOptions {
  /** Sent as `Last-Event-ID` (default: the client's own {@link StreamClient.lastEventId}). */
  cursor?: string | null;
  /** Send the cursor as the `lastEventId` query parameter instead of the header. */
  cursorInQuery?: boolean;
}

export class StreamClient {
  readonly token: string;
  readonly channels: readonly string[];
  /** Per channel: what arrived, over every connection. */
  readonly log = new Map<string, ChannelLog>();
  /** Status of every connect attempt (0: the connection failed), in order. */
  readonly statuses: number[] = [];
  /** Body of the last non-200 response. */
  lastErrorBody = "";
  /** `close` control events received. */
  readonly closes: Record<string, unknown>[] = [];
  /** What `EventSource.lastEventId` would be. */
  lastEventId = "";
  /** Blocks that were neither an event of one of the channels nor a known control event. */
  readonly strays: string[] = [];
  /** Base URL of the pod of the current (or last) connection. */
  podUrl = "";
  /** The reconnection time: the last `retry:` hint (EventSource's default until one came). */
  retryMs = 3_000;
  /** When each stream that had started ended other than by {@link close} (`performance.now()`). */
  readonly ends: number[] = [];
  /** When each reconnect of {@link start} was sent (not the first connect). */
  readonly reconnects: number[] = [];

  readonly #transport: StreamTransport;
  readonly #tags: Map<string, string>;
  readonly #waiters = new Set<() => void>();
  /** The current connection (an identity: callbacks of an abandoned one are ignored). */
  #connection: object | null = null;
  #cancel: () => void = () => {};
  #ended: Promise<void> = Promise.resolve();
  #open = false;
  #stopped = false;
  #loop: Promise<void> | null = null;

  constructor(token: string, channels: readonly string[], transport: StreamTransport = http1) {
    this.token = token;
    this.channels = channels;
    this.#transport = transport;
    this.#tags = new Map(channels.map((c) => [c, channelTag(c)]));
    for (const channel of channels) {
      this.log.set(channel, { events: [], resets: [], resetAt: [], start: null });
    }
  }

  /** Whether a stream is open right now. */
  get open(): boolean {
    return this.#open;
  }

  /** Events received on `channel` so far (of `type` only, when given). */
  count(channel: string, type?: string): number {
    const events = this.#channel(channel).events;
    if (type === undefined) return events.length;
    let n = 0;
    for (const event of events) if (event.json.type === type) n++;
    return n;
  }

  /**
   * Where the client is on `channel`: the offset of the last event received since the last
   * `reset` (its start when none came yet). A reset moves the channel elsewhere (a new epoch
   * starts again at 1, a trimmed replay jumps ahead), so offsets from before it say nothing
   * about the position after it: 0 until the first event after it arrives.
   */
  lastOffset(channel: string): number {
    return positionOf(this.#channel(channel));
  }

  /**
   * Opens the stream on `podUrl` and resolves with the response status once the headers came
   * (200: the stream runs until {@link close} or the server ends it; any other status once its
   * body came). Never rejects: a connection error counts as status 0.
   */
  connect(podUrl: string, options: ConnectOptions = {}): Promise<number> {
    this.close();
    this.podUrl = podUrl;
    const cursor = options.cursor === undefined ? this.lastEventId : options.cursor;
    const query = new URLSearchParams();
    for (const channel of this.channels) query.append("channel", channel);
    if (cursor && options.cursorInQuery) query.set("lastEventId", cursor);
    const headers: Record<string, string> = {
      accept: "text/event-stream",
      authorization: `Bearer ${this.token}`,
    };
    if (cursor && !options.cursorInQuery) headers["last-event-id"] = cursor;
    const connection = {};
    this.#connection = connection;
    const current = () => this.#connection === connection;
    let ended!: () => void;
    this.#ended = new Promise((resolve) => {
      ended = resolve;
    });
    return new Promise((resolve) => {
      let status = 0;
      let body = "";
      let parser: EventStreamParser | null = null;
      const settle = (code: number) => {
        this.statuses.push(code);
        this.#notify();
        resolve(code);
      };
      this.#cancel = this.#transport(podUrl, `/api/events?${query}`, headers, {
        status: (code) => {
          status = code;
          if (code === 200 && current()) {
            this.#open = true;
            parser = new EventStreamParser(
              this.lastEventId,
              (block) => this.#dispatch(block),
              (ms) => {
                this.retryMs = ms;
              },
            );
          }
          if (code === 200 || code === 0) settle(code);
        },
        data: (chunk) => {
          // A chunk that arrives after close() belongs to an abandoned connection.
          if (status === 200) {
            if (current()) parser?.feed(chunk);
          } else body += chunk;
        },
        end: () => {
          if (status !== 200 && status !== 0) {
            this.lastErrorBody = body;
            settle(status);
          }
          if (current() && this.#open) {
            this.#open = false;
            this.ends.push(performance.now());
          }
          this.#notify();
          ended();
        },
      });
    });
  }

  /** Drops the connection client-side (what a network cut or a closed tab does). */
  close(): void {
    this.#connection = null;
    this.#open = false;
    this.#cancel();
    this.#cancel = () => {};
  }

  /**
   * Connects to `podUrl` and, as `EventSource` does, reconnects by itself each time the stream
   * ends or is refused, after {@link retryMs}, with `Last-Event-ID`, until {@link stop}.
   */
  start(podUrl: string): void {
    this.#loop ??= (async () => {
      let first = true;
      while (!this.#stopped) {
        if (!first) this.reconnects.push(performance.now());
        first = false;
        await this.connect(podUrl);
        await this.#ended;
        if (this.#stopped) break;
        await delay(this.retryMs);
      }
    })();
  }

  /** Stops reconnecting and drops the current stream. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.close();
    this.#notify();
    await this.#loop;
  }

  /** Resolves when `check()` holds; rejects with `describe()` after `timeoutMs`. */
  until(check: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        if (!check()) return false;
        this.#waiters.delete(attempt);
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(attempt);
        reject(new Error(`timed out after ${timeoutMs} ms: ${describe()}`));
      }, timeoutMs);
      if (!attempt()) this.#waiters.add(attempt);
    });
  }

  /**
   * Resolves once every channel has at least `counts[channel]` events (of `type`, if given),
   * counted over the whole log: every connection, every epoch. Only for a client that is never
   * reset; wait on positions ({@link untilOffsets}) wherever a reset may come, or a count of
   * events from before it is satisfied before the events awaited arrive.
   */
  untilCounts(
    counts: ReadonlyMap<string, number>,
    timeoutMs: number,
    type?: string,
  ): Promise<void> {
    return this.until(
      () => [...counts].every(([c, n]) => this.count(c, type) >= n),
      timeoutMs,
      () => `expected ${JSON.stringify([...counts])} ${type ?? ""} events; ${this.describe()}`,
    );
  }

  /**
   * Resolves once every channel got an event at or past `offsets[channel]` since its last
   * `reset` (see {@link lastOffset}; channels not of this client are ignored).
   */
  untilOffsets(offsets: ReadonlyMap<string, number>, timeoutMs: number): Promise<void> {
    return this.until(
      () => [...offsets].every(([c, n]) => !this.log.has(c) || this.lastOffset(c) >= n),
      timeoutMs,
      () => `expected offsets ${JSON.stringify([...offsets])}; ${this.describe()}`,
    );
  }

  /** Counts, last offsets and resets per channel, for error messages. */
  describe(): string {
    const channels = this.channels.map((c) => [
      c,
      this.count(c),
      this.lastOffset(c),
      this.#channel(c).resets,
    ]);
    return `got [channel, events, last offset, resets] ${JSON.stringify(channels)} (open=${
      this.#open
    }, statuses=${this.statuses.slice(-5)})`;
  }

  #channel(channel: string): ChannelLog {
    const log = this.log.get(channel);
    if (!log) throw new Error(`not a channel of this client: ${channel}`);
    return log;
  }

  #dispatch(block: Block): void {
    // As EventSource: the last event ID is set by every dispatched block, with data or not.
    this.lastEventId = block.id;
    if (block.data === null || block.event === "ready") {
      // The `ready` event (or an id-only block): the first one of the first stream says where
      // the client started.
      const cursor = decodeCursor(block.id);
      for (const [channel, tag] of this.#tags) {
        const log = this.#channel(channel);
        const entry = cursor?.entries.get(tag);
        if (log.start === null && entry) log.start = entry.offset;
      }
      this.#notify();
      return;
    }
    const json = JSON.parse(block.data) as Record<string, unknown>;
    if (block.event === "reset") {
      const log = this.#channel(String(json.channel));
      log.resets.push(String(json.reason));
      log.resetAt.push(log.events.length);
    } else if (block.event === "close") {
      this.closes.push(json);
    } else if (block.event === null) {
      const channel = String(json.channel);
      const tag = this.#tags.get(channel);
      const entry = tag ? decodeCursor(block.id)?.entries.get(tag) : undefined;
      if (!entry) this.strays.push(block.data);
      else {
        this.#channel(channel).events.push({
          offset: entry.offset,
          epochTag: entry.epochTag,
          json,
        });
      }
    } else {
      this.strays.push(`${block.event}: ${block.data}`);
    }
    this.#notify();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}
