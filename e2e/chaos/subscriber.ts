/**
 * A subscriber that behaves like a plain browser `EventSource` on one stream of one or more
 * channels, with its own SSE parsing (`eventsource-parser`) and bookkeeping, nothing of the
 * service's:
 *
 * - the last event id is the `id:` of the last complete block that had one; after the stream
 *   ends it reconnects with it as `Last-Event-ID`, once the server's `retry:` has passed (plus
 *   a jitter drawn from the seed), each time to a pod drawn from the seed;
 * - a refused connect (503 while a pod drains or Redis is away) fails an `EventSource` for
 *   good: the page opens a new one with the cursor in `?lastEventId=` after `Retry-After`;
 * - "cutters" drop their connection now and then in the middle of a chunk (a partial event is
 *   never dispatched), and now and then a subscriber forgets its cursor (a new tab), which
 *   starts a new {@link Session}.
 *
 * Everything it receives goes into the run log: our events by the id in their body, `reset`s,
 * and anything unexpected as a stray.
 */
import http from "node:http";
import http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { H2Pool, PodAddress } from "./http-client.ts";
import type { Random } from "./random.ts";
import { type RunLog, recordEvent, recordReset, type Session } from "./run-log.ts";

export interface SubscriberOptions {
  readonly name: string;
  readonly userId: string;
  readonly token: string;
  readonly channels: readonly string[];
  /** Drops its own connection mid-chunk every 1–8 s while cutting is on. */
  readonly cutter: boolean;
  readonly random: Random;
  readonly pods: () => readonly PodAddress[];
  readonly h2: H2Pool;
  readonly log: RunLog;
  readonly clock: () => number;
  /** Reads the id out of an event's body (null: not one of the run's events). */
  readonly eventId: (json: Record<string, unknown>) => number | null;
}

/** How long a connect may wait for its response headers (a frozen pod) before giving up. */
const CONNECT_TIMEOUT_MS = 15_000;
/** Chance, per reconnect while churn is on, that the subscriber forgets its cursor. */
const FORGET_CHANCE = 0.04;

export class Subscriber {
  readonly name: string;
  readonly userId: string;
  readonly channels: readonly string[];
  /** Whether a stream is open now (its `ready` arrived and it has not ended). */
  open = false;
  /** When the last open stream ended. */
  lastClosedAt = 0;
  /** Off once faults stop: no more self-inflicted cuts or forgotten cursors. */
  churn = true;
  /** Every connect: pod port, when, status, when it ended, whether it carried a cursor. */
  readonly history: {
    port: number;
    at: number;
    status: number;
    ready: number;
    end: number;
    cursor: string;
  }[] = [];
  #entry: { ready: number } | null = null;
  readonly #options: SubscriberOptions;
  readonly #current = new Map<string, Session>();
  #lastEventId = "";
  #cursorInQuery = false;
  #retryMs = 3_000;
  #stopped = false;
  #abort: (() => void) | null = null;
  readonly #wake = new AbortController();
  #loop: Promise<void> | null = null;

  constructor(options: SubscriberOptions) {
    this.#options = options;
    this.name = options.name;
    this.userId = options.userId;
    this.channels = options.channels;
  }

  /** The `Last-Event-ID` it would send now ("" without one). */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** The sessions in progress, one per channel (none before the first `ready`). */
  sessions(): readonly Session[] {
    return [...this.#current.values()];
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops reconnecting and closes the stream. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.();
    this.#wake.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { random } = this.#options;
    while (!this.#stopped) {
      // Every choice of this connect is drawn now, in order, from this subscriber's stream.
      const pods = this.#options.pods();
      const pod = pods[random.int(0, pods.length - 1)] as PodAddress;
      const forget = random.chance(FORGET_CHANCE);
      const cutAfterMs = random.between(1_000, 8_000);
      const cutAt = random.float();
      const jitter = random.float();
      if (forget && this.churn && this.#lastEventId !== "") {
        this.#lastEventId = "";
        this.#endSessions();
      }
      const wait = await this.#connect(
        pod,
        this.#options.cutter && this.churn ? cutAfterMs : null,
        cutAt,
      );
      if (this.#stopped) break;
      // EventSource waits the retry time; the jitter stands in for the server's own.
      await sleep(wait + jitter * this.#retryMs, undefined, { signal: this.#wake.signal }).catch(
        () => {},
      );
    }
    // Stopping ends no session: the run's end is judged as the end of every open one.
  }

  #endSessions(): void {
    const at = this.#options.clock();
    for (const session of this.#current.values()) session.endedAt = at;
    this.#current.clear();
  }

  /** One connection; resolves with how long to wait before the next (the retry time). */
  #connect(pod: PodAddress, cutAfterMs: number | null, cutAt: number): Promise<number> {
    const { clock, token } = this.#options;
    const query = new URLSearchParams();
    for (const channel of this.channels) query.append("channel", channel);
    const headers: Record<string, string> = {
      accept: "text/event-stream",
      authorization: `Bearer ${token}`,
    };
    if (this.#lastEventId !== "") {
      if (this.#cursorInQuery) query.set("lastEventId", this.#lastEventId);
      else headers["last-event-id"] = this.#lastEventId;
    }
    const path = `/api/events?${query}`;
    const cursorless = this.#lastEventId === "";
    const requestedAt = clock();
    const entry = {
      port: pod.port,
      at: requestedAt,
      status: 0,
      ready: 0,
      end: 0,
      cursor: cursorless ? "" : this.#cursorInQuery ? "query" : "header",
    };
    this.history.push(entry);
    this.#entry = entry;
    return new Promise((resolve) => {
      let status = 0;
      let retryAfterMs = 0;
      let openedAt = 0;
      let finished = false;
      const parser = createParser({
        onEvent: (message) => this.#dispatch(message, cursorless, requestedAt),
        onRetry: (ms) => {
          this.#retryMs = ms;
        },
      });
      let cut: () => void = () => {};
      const finish = () => {
        if (finished) return;
        finished = true;
        entry.status = status;
        entry.end = clock();
        clearTimeout(connectTimer);
        this.#abort = null;
        if (this.open) this.lastClosedAt = clock();
        this.open = false;
        if (status === 200) this.#cursorInQuery = false;
        else if (status !== 0) this.#cursorInQuery = true;
        resolve(
          status === 200 || status === 0 ? this.#retryMs : Math.max(this.#retryMs, retryAfterMs),
        );
      };
      const onChunk = (chunk: string) => {
        // After a cut, chunks already read from the socket may still be emitted: they were
        // never received, as far as this connection is concerned.
        if (finished || status !== 200) return;
        if (cutAfterMs !== null && clock() - openedAt >= cutAfterMs && chunk.length > 1) {
          // Cut inside this chunk: what precedes the cut is parsed, a partial block is lost.
          parser.feed(chunk.slice(0, 1 + Math.floor(cutAt * (chunk.length - 1))));
          cut();
          finish();
          return;
        }
        parser.feed(chunk);
      };
      const onHead = (code: number, after: unknown) => {
        status = code;
        clearTimeout(connectTimer);
        const seconds = Number(after);
        retryAfterMs = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
        openedAt = clock();
      };
      const connectTimer = setTimeout(() => {
        cut();
        finish();
      }, CONNECT_TIMEOUT_MS);
      if (pod.h2c) {
        let stream: http2.ClientHttp2Stream;
        try {
          stream = this.#options.h2.get(pod.port).request({ ":path": path, ...headers });
        } catch {
          finish();
          return;
        }
        cut = () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
        };
        stream.setEncoding("utf8");
        stream.once("response", (head) =>
          onHead(Number(head[":status"] ?? 0), head["retry-after"]),
        );
        stream.on("data", onChunk);
        stream.once("close", finish);
        stream.once("error", finish);
      } else {
        const req = http.request({
          host: "127.0.0.1",
          port: pod.port,
          path,
          headers,
          agent: false,
        });
        cut = () => req.destroy();
        req.once("response", (res) => {
          onHead(res.statusCode ?? 0, res.headers["retry-after"]);
          res.setEncoding("utf8");
          // A refusal's body is read to its end, so the socket closes cleanly.
          res.on("data", onChunk);
          res.once("close", finish);
          res.once("error", finish);
        });
        req.once("error", finish);
        req.once("close", () => {
          // Without a response the request itself reports the end.
          if (status === 0) finish();
        });
        req.end();
      }
      this.#abort = () => {
        cut();
        finish();
      };
    });
  }

  #dispatch(message: EventSourceMessage, cursorless: boolean, requestedAt: number): void {
    const { clock, log } = this.#options;
    const at = clock();
    // As EventSource: a block with an id moves the cursor; one without keeps it.
    if (message.id !== undefined) this.#lastEventId = message.id;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(message.data) as Record<string, unknown>;
    } catch {
      this.#stray(at, `unparsable data: ${message.data.slice(0, 200)}`);
      return;
    }
    switch (message.event) {
      case "ready":
        this.open = true;
        if (this.#entry) this.#entry.ready = at;
        if (cursorless) {
          this.#endSessions();
          for (const channel of this.channels) {
            const session: Session = {
              subscriber: this.name,
              channel,
              requestedAt,
              readyAt: at,
              items: [],
              times: [],
              resets: [],
              endedAt: null,
            };
            this.#current.set(channel, session);
            log.sessions.push(session);
          }
        }
        return;
      case "reset": {
        const session = this.#current.get(String(json.channel));
        if (!session) this.#stray(at, `reset for a channel not on the stream: ${message.data}`);
        else recordReset(session, String(json.reason), at);
        return;
      }
      case "close":
        if (Number(json.code) >= 3500) this.#stray(at, `terminal close: ${message.data}`);
        return;
      case undefined:
        break;
      default:
        this.#stray(at, `event: ${message.event} ${message.data.slice(0, 200)}`);
        return;
    }
    const session = this.#current.get(String(json.channel));
    const id = this.#options.eventId(json);
    if (id === null) {
      if (json.type === "presence" && session) return;
      this.#stray(at, `not one of the run's events: ${message.data.slice(0, 200)}`);
      return;
    }
    const event = log.events[id];
    if (!session || !event || event.channel !== json.channel) {
      this.#stray(at, `e${id} on the wrong stream or channel: ${message.data.slice(0, 200)}`);
      return;
    }
    event.firstSeenAt ??= at;
    recordEvent(session, id, at);
  }

  #stray(at: number, what: string): void {
    this.#options.log.strays.push({ subscriber: this.name, at, what });
  }
}
