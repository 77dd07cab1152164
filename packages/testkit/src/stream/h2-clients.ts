/**
 * Clients for end-to-end tests through a TLS-terminating HTTP/2 proxy (nginx in
 * `scripts/stack.ts`): what browsers do, from Node.
 *
 * - {@link H2Sessions}: a few TLS HTTP/2 connections shared by many streams (a browser puts
 *   every tab of an origin on one connection), accepting the stack's self-signed certificate,
 *   replaced when the proxy says GOAWAY or the connection drops.
 * - {@link H2EventSource}: `EventSource` semantics on one of them — reconnects by itself after
 *   the stream ends, waiting the server's last `retry:` hint, with `Last-Event-ID` — and
 *   records per channel every event's offset (the same {@link ChannelLog} as `StreamClient`,
 *   so `checkChannel` applies), every `reset`, `close` event, status, stream end and
 *   reconnect time.
 * - {@link H2Publisher}: `POST /api/publish` through the proxy at a paced rate.
 */
import http2 from "node:http2";
import { setTimeout as delay } from "node:timers/promises";
import { channelTag, decodeCursor } from "@realtime/protocol";
import { type Block, EventStreamParser } from "./event-stream-parser.ts";
import { type ChannelLog, positionOf } from "./stream-client.ts";

/** A pool of HTTP/2 connections to one origin; `get(i)` always returns a usable one. */
export class H2Sessions {
  readonly #origin: string;
  readonly #sessions: (http2.ClientHttp2Session | undefined)[];
  /** Connections opened over the pool's life (replacements included). */
  opened = 0;
  /** GOAWAYs received from the server. */
  goaways = 0;

  constructor(origin: string, count: number) {
    this.#origin = origin;
    this.#sessions = new Array(count).fill(undefined);
  }

  get size(): number {
    return this.#sessions.length;
  }

  get(index: number): http2.ClientHttp2Session {
    const slot = index % this.#sessions.length;
    const current = this.#sessions[slot];
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(this.#origin, { rejectUnauthorized: false });
    this.opened++;
    // A GOAWAY (the proxy's keepalive_requests, a reload) ends the connection once its open
    // streams are done: new streams go on a fresh one.
    session.once("goaway", () => {
      this.goaways++;
      if (this.#sessions[slot] === session) this.#sessions[slot] = undefined;
    });
    session.once("close", () => {
      if (this.#sessions[slot] === session) this.#sessions[slot] = undefined;
    });
    session.on("error", () => {});
    this.#sessions[slot] = session;
    return session;
  }

  close(): void {
    for (const session of this.#sessions) session?.destroy();
    this.#sessions.fill(undefined);
  }
}

export class H2EventSource {
  readonly channels: readonly string[];
  readonly log = new Map<string, ChannelLog>();
  /** Status of every request (0: the connection failed), in order. */
  readonly statuses: number[] = [];
  /** `close` control events: their `code`. */
  readonly closes: number[] = [];
  /** When each stream that had started ended (`performance.now()`). */
  readonly ends: number[] = [];
  /** When each reconnect request was sent (not the first connect). */
  readonly reconnects: number[] = [];
  /** Blocks that were neither an event of one of the channels nor a known control event. */
  readonly strays: string[] = [];
  lastEventId = "";
  /** The reconnection time: the last `retry:` hint (EventSource's default until one came). */
  retryMs = 3_000;

  readonly #sessions: H2Sessions;
  readonly #slot: number;
  readonly #token: string;
  readonly #tags: Map<string, string>;
  #stream: http2.ClientHttp2Stream | null = null;
  #stopped = false;
  #open = false;
  #loop: Promise<void> | null = null;
  #waiters = new Set<() => void>();

  constructor(sessions: H2Sessions, slot: number, token: string, channels: readonly string[]) {
    this.#sessions = sessions;
    this.#slot = slot;
    this.#token = token;
    this.channels = channels;
    this.#tags = new Map(channels.map((c) => [c, channelTag(c)]));
    for (const channel of channels) {
      this.log.set(channel, { events: [], resets: [], resetAt: [], start: null });
    }
  }

  get open(): boolean {
    return this.#open;
  }

  /** Starts the connect / reconnect loop. */
  start(): void {
    this.#loop ??= (async () => {
      let first = true;
      while (!this.#stopped) {
        if (!first) this.reconnects.push(performance.now());
        first = false;
        await this.#once();
        if (this.#stopped) break;
        await delay(this.retryMs);
      }
    })();
  }

  /** Stops reconnecting and drops the current stream. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stream?.close(http2.constants.NGHTTP2_CANCEL);
    this.#notify();
    await this.#loop;
  }

  /** Where the client is on `channel`, as `StreamClient.lastOffset` (0 after a reset). */
  lastOffset(channel: string): number {
    const log = this.log.get(channel);
    return log ? positionOf(log) : 0;
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

  describe(): string {
    const channels = this.channels.map((c) => [
      c,
      this.log.get(c)?.events.length,
      this.lastOffset(c),
    ]);
    return `[channel, events, last offset] ${JSON.stringify(channels)} open=${this.#open} statuses=${this.statuses.slice(-5)}`;
  }

  #once(): Promise<void> {
    const query = new URLSearchParams();
    for (const channel of this.channels) query.append("channel", channel);
    const headers: http2.OutgoingHttpHeaders = {
      ":path": `/api/events?${query}`,
      accept: "text/event-stream",
      authorization: `Bearer ${this.#token}`,
    };
    if (this.lastEventId) headers["last-event-id"] = this.lastEventId;
    return new Promise((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.#sessions.get(this.#slot).request(headers);
      } catch {
        this.statuses.push(0);
        resolve();
        return;
      }
      this.#stream = stream;
      let status = 0;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        if (status === 0) this.statuses.push(0);
        if (this.#open) this.ends.push(performance.now());
        this.#open = false;
        this.#stream = null;
        this.#notify();
        resolve();
      };
      stream.setEncoding("utf8");
      stream.once("response", (response) => {
        status = Number(response[":status"] ?? 0);
        this.statuses.push(status);
        if (status !== 200) {
          stream.resume();
          return;
        }
        this.#open = true;
        const parser = new EventStreamParser(
          this.lastEventId,
          (block) => this.#dispatch(block),
          (ms) => {
            this.retryMs = ms;
          },
        );
        stream.on("data", (chunk: string) => parser.feed(chunk));
        this.#notify();
      });
      stream.once("end", finish);
      stream.once("close", finish);
      stream.once("error", finish);
    });
  }

  #dispatch(block: Block): void {
    // As EventSource: the last event ID is set by every dispatched block, with data or not.
    this.lastEventId = block.id;
    if (block.event === "ready" || block.data === null) {
      // The starting cursor: where the first stream of each channel started.
      const cursor = decodeCursor(block.id);
      for (const [channel, tag] of this.#tags) {
        const log = this.log.get(channel);
        const entry = cursor?.entries.get(tag);
        if (log && log.start === null && entry) log.start = entry.offset;
      }
    } else if (block.event === "close") {
      this.closes.push(Number((JSON.parse(block.data) as { code: number }).code));
    } else if (block.event === "reset") {
      const json = JSON.parse(block.data) as { channel: string; reason: string };
      const log = this.log.get(json.channel);
      log?.resets.push(json.reason);
      log?.resetAt.push(log.events.length);
    } else if (block.event === null) {
      const json = JSON.parse(block.data) as { type: string; channel: string; message?: string };
      const tag = this.#tags.get(json.channel);
      const entry = tag ? decodeCursor(block.id)?.entries.get(tag) : undefined;
      const log = this.log.get(json.channel);
      if (!entry || !log) this.strays.push(block.data);
      else {
        // Only what the checks read: the type and the publisher's message.
        log.events.push({
          offset: entry.offset,
          epochTag: entry.epochTag,
          json: { type: json.type, message: json.message },
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

export interface H2PublishResult {
  /** Per channel: offset → message, for every 202. */
  readonly accepted: Map<string, Map<number, string>>;
  /** Every status seen (0: no response), counted. */
  readonly statuses: Map<number, number>;
  /** Publishes retried after a 503 `RT_ERR_SHUTTING_DOWN` (refused before anything happened). */
  readonly retried: number;
  /**
   * Publishes whose outcome is unknown (no response, 502/504: the request may have reached a
   * pod that stopped before it answered). Not retried, so an event is never published twice.
   */
  readonly ambiguous: number;
  readonly sent: number;
  readonly elapsedMs: number;
}

/**
 * Publishes `{ type: "tick", message: "<channel>#<n>" }` round-robin over `channels` through
 * the proxy at `rate` per second until `signal` aborts.
 */
export async function publishThroughProxy(options: {
  readonly sessions: H2Sessions;
  readonly token: string;
  readonly channels: readonly string[];
  readonly rate: number;
  readonly signal: AbortSignal;
}): Promise<H2PublishResult> {
  const { sessions, token, channels, rate, signal } = options;
  const accepted = new Map(channels.map((c) => [c, new Map<number, string>()]));
  const statuses = new Map<number, number>();
  let retried = 0;
  let ambiguous = 0;
  const start = performance.now();
  const inFlight = new Set<Promise<void>>();
  let n = 0;
  const post = (body: string) =>
    new Promise<{ status: number; body: string }>((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = sessions.get(n).request({
          ":method": "POST",
          ":path": "/api/publish",
          "content-type": "application/json",
          authorization: `Bearer ${token}`,
        });
      } catch {
        resolve({ status: 0, body: "" });
        return;
      }
      let status = 0;
      let text = "";
      stream.setEncoding("utf8");
      stream.once("response", (headers) => {
        status = Number(headers[":status"] ?? 0);
      });
      stream.on("data", (chunk: string) => {
        text += chunk;
      });
      const done = () => resolve({ status, body: text });
      stream.once("end", done);
      stream.once("close", done);
      stream.once("error", done);
      stream.end(body);
    });
  const publishOne = async (i: number) => {
    const channel = channels[i % channels.length] as string;
    const message = `${channel}#${i}`;
    const body = JSON.stringify({ channel, event: { type: "tick", message } });
    for (let attempt = 0; attempt < 5; attempt++) {
      const response = await post(body);
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      if (response.status === 202) {
        const { offset } = JSON.parse(response.body) as { offset: number };
        accepted.get(channel)?.set(offset, message);
        return;
      }
      if (response.status === 503 && response.body.includes("RT_ERR_SHUTTING_DOWN")) {
        retried++;
        continue;
      }
      if (response.status === 0 || response.status === 502 || response.status === 504) {
        ambiguous++;
      }
      return;
    }
  };
  while (!signal.aborted) {
    const due = start + (n / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await delay(wait);
    if (signal.aborted) break;
    const job = publishOne(n++).finally(() => inFlight.delete(job));
    inFlight.add(job);
  }
  await Promise.all(inFlight);
  return {
    accepted,
    statuses,
    retried,
    ambiguous,
    sent: n,
    elapsedMs: performance.now() - start,
  };
}
