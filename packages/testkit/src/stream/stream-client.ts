/**
 * A resumable SSE client for multi-pod tests: it behaves like a browser's `EventSource` where
 * it matters for resuming — `lastEventId` changes only when a whole block has arrived (a
 * block cut by a disconnect is dropped), id-only blocks update it too — and it records, per
 * channel, the offset of every event it got (decoded from the event's cursor `id:`), every
 * `reset`, and every status code, across any number of reconnects to any pod.
 *
 * Unlike `sse-client.ts`, it parses line by line across chunk boundaries, so an `id:` line
 * split over two TCP reads never yields a truncated cursor.
 */
import http from "node:http";
import { channelTag, decodeCursor } from "@realtime/protocol";
import { type Block, EventStreamParser } from "./event-stream-parser.ts";

export interface ReceivedEvent {
  readonly offset: number;
  readonly epochTag: string;
  /** The event's JSON, parsed. */
  readonly json: Record<string, unknown>;
}

export interface ChannelLog {
  /** Every application event of the channel (any `type`), in arrival order. */
  readonly events: ReceivedEvent[];
  /** `reset` reasons, in the order they came. */
  readonly resets: string[];
  /** For each reset, how many events had arrived before it (an index into `events`). */
  readonly resetAt: number[];
  /** The offset the client's first stream started after (its first id-only block), or null. */
  start: number | null;
}

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
  /** Status of every connect attempt, in order. */
  readonly statuses: number[] = [];
  /** Body of the last non-200 response. */
  lastErrorBody = "";
  /** `close` control events received. */
  readonly closes: Record<string, unknown>[] = [];
  /** What `EventSource.lastEventId` would be. */
  lastEventId = "";
  /** Events the client could not attribute to a channel (must stay 0). */
  readonly strays: string[] = [];
  /** Base URL of the pod of the current (or last) connection. */
  podUrl = "";

  #request: http.ClientRequest | null = null;
  #open = false;
  #waiters = new Set<() => void>();
  readonly #tags: Map<string, string>;

  constructor(token: string, channels: readonly string[]) {
    this.token = token;
    this.channels = channels;
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
   * (200: the stream runs until {@link close} or the server ends it). Never rejects: a
   * connection error counts as status 0.
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
    return new Promise((resolve) => {
      const request = http.get(`${podUrl}/api/events?${query}`, { headers, agent: false });
      this.#request = request;
      let settled = false;
      const settle = (status: number) => {
        if (settled) return;
        settled = true;
        this.statuses.push(status);
        this.#notify();
        resolve(status);
      };
      request.once("error", () => {
        if (this.#request === request) this.#open = false;
        settle(0);
        this.#notify();
      });
      request.once("response", (response) => {
        const status = response.statusCode ?? 0;
        response.setEncoding("utf8");
        if (status !== 200) {
          let body = "";
          response.on("data", (chunk: string) => {
            body += chunk;
          });
          response.once("end", () => {
            this.lastErrorBody = body;
            settle(status);
          });
          response.once("error", () => settle(status));
          return;
        }
        this.#open = true;
        const parser = new EventStreamParser(
          "",
          (block) => this.#dispatch(block),
          () => {},
        );
        response.on("data", (chunk: string) => {
          // A chunk that arrives after close() belongs to an abandoned connection.
          if (this.#request === request) parser.feed(chunk);
        });
        const ended = () => {
          if (this.#request === request) this.#open = false;
          this.#notify();
        };
        response.once("end", ended);
        response.once("close", ended);
        response.once("error", ended);
        settle(200);
      });
    });
  }

  /** Drops the connection client-side (what a network cut or a closed tab does). */
  close(): void {
    const request = this.#request;
    this.#request = null;
    this.#open = false;
    request?.destroy();
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

/**
 * The position a channel's log is at (see {@link StreamClient.lastOffset}): the last event's
 * offset since the last reset, the start when no event and no reset came yet, else 0.
 */
export function positionOf(log: ChannelLog): number {
  const reset = log.resetAt.at(-1);
  if (reset === undefined) return log.events.at(-1)?.offset ?? log.start ?? 0;
  return log.events.length > reset ? (log.events.at(-1)?.offset ?? 0) : 0;
}

export interface ChannelCheck {
  /** Events of the checked type received. */
  readonly received: number;
  /** Events of the checked type published. */
  readonly expected: number;
  /** Events (any type) whose offset came before, in their epoch. */
  readonly duplicates: number;
  /** Events (any type) whose offset is below the one before them, in their epoch. */
  readonly outOfOrder: number;
  /**
   * Holes in the offsets (any type): the first event after the stream's start, or the first of
   * a new epoch at 1, and each next one at +1.
   */
  readonly gaps: number;
  /** Published events of the checked type never received. */
  readonly missing: number;
  /** Events of the checked type received but not published (by this test). */
  readonly extra: number;
  /** Events whose content is not what was published at their offset. */
  readonly wrongContent: number;
  readonly resets: readonly string[];
}

/**
 * Checks one channel of a client. The whole sequence, whatever the event types (other
 * features, e.g. presence, publish on the same channels), must be gapless and in order per
 * epoch. Then the events of `type` are compared with what the test published: `expected` maps
 * offset → the event's `message` (or is only the count, when positions are not known).
 */
export function checkChannel(
  log: ChannelLog,
  type: string,
  expected: ReadonlyMap<number, string> | number,
): ChannelCheck {
  let duplicates = 0;
  let outOfOrder = 0;
  let gaps = 0;
  let epoch: string | null = null;
  let previous = log.start ?? 0;
  let seen = new Set<number>();
  for (const event of log.events) {
    if (event.epochTag !== epoch) {
      if (epoch !== null) previous = 0; // a new epoch's history starts at 1
      epoch = event.epochTag;
      seen = new Set();
    }
    if (seen.has(event.offset)) duplicates++;
    else if (event.offset < previous) outOfOrder++;
    else if (event.offset !== previous + 1) gaps++;
    seen.add(event.offset);
    previous = Math.max(previous, event.offset);
  }
  const mine = log.events.filter((e) => e.json.type === type);
  let missing = 0;
  let extra = 0;
  let wrongContent = 0;
  if (typeof expected === "number") {
    missing = Math.max(0, expected - mine.length);
    extra = Math.max(0, mine.length - expected);
  } else {
    const got = new Map<number, ReceivedEvent>();
    for (const event of mine) got.set(event.offset, event);
    for (const [offset, message] of expected) {
      const event = got.get(offset);
      if (!event) missing++;
      else if (event.json.message !== message) wrongContent++;
    }
    for (const offset of got.keys()) if (!expected.has(offset)) extra++;
  }
  return {
    received: mine.length,
    expected: typeof expected === "number" ? expected : expected.size,
    duplicates,
    outOfOrder,
    gaps,
    missing,
    extra,
    wrongContent,
    resets: log.resets,
  };
}

/** The check's fields that must be zero (and no resets) for a perfect channel. */
export function perfect(check: ChannelCheck): ChannelCheck {
  return {
    ...check,
    duplicates: 0,
    outOfOrder: 0,
    gaps: 0,
    missing: 0,
    extra: 0,
    wrongContent: 0,
    resets: [],
  };
}
