/**
 * A test SSE client over real sockets (node:http for HTTP/1.1, node:http2 for h2): parses the
 * stream incrementally with a spec parser and lets tests await the events they expect, with a
 * deadline instead of sleeps.
 */
import http from "node:http";
import type { ClientHttp2Session } from "node:http2";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { EventStreamParser } from "./event-stream-parser.ts";

export interface SseClient {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Every event so far (data events and control events). */
  readonly events: EventSourceMessage[];
  /** Every `retry:` value so far. */
  readonly retries: number[];
  /** The body so far, as text (for errors before the stream started: JSON). */
  readonly text: () => string;
  /** What `EventSource.lastEventId` would be now. */
  readonly lastEventId: () => string;
  /** Resolves with the first event (from the start) matching `match`. */
  waitFor(
    match: (e: EventSourceMessage) => boolean,
    timeoutMs?: number,
  ): Promise<EventSourceMessage>;
  /** Resolves when at least `count` events match. */
  waitForCount(
    count: number,
    match?: (e: EventSourceMessage) => boolean,
    timeoutMs?: number,
  ): Promise<EventSourceMessage[]>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  /** Stops reading: the transport's receive window fills and the server sees backpressure. */
  pause(): void;
  close(): void;
}

class Collector {
  readonly events: EventSourceMessage[] = [];
  readonly retries: number[] = [];
  body = "";
  lastId = "";
  #waiters = new Set<() => void>();
  /**
   * Tracks the last event ID as `EventSource` does: it changes when a whole block has arrived
   * (id-only blocks included), never on an `id:` line whose block a cut may still drop — a
   * cursor taken between the two would point past an event the client never got.
   */
  readonly #ids = new EventStreamParser(
    "",
    (block) => {
      this.lastId = block.id;
    },
    () => {},
  );
  readonly #parser = createParser({
    onEvent: (event) => {
      this.events.push(event);
      this.#notify();
    },
    onRetry: (ms) => this.retries.push(ms),
  });

  feed(chunk: string): void {
    this.body += chunk;
    this.#ids.feed(chunk);
    this.#parser.feed(chunk);
    this.#notify();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const value = check();
        if (value === undefined) return false;
        this.#waiters.delete(attempt);
        clearTimeout(timer);
        resolve(value);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(attempt);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; got:\n${this.body.slice(-2000)}`,
          ),
        );
      }, timeoutMs);
      if (!attempt()) this.#waiters.add(attempt);
    });
  }
}

function client(
  collector: Collector,
  status: number,
  headers: SseClient["headers"],
  ended: Promise<void>,
  close: () => void,
  pause: () => void,
): SseClient {
  return {
    status,
    headers,
    events: collector.events,
    retries: collector.retries,
    text: () => collector.body,
    lastEventId: () => collector.lastId,
    waitFor: (match, timeoutMs = 5000) =>
      collector.until(() => collector.events.find(match), timeoutMs, "a matching event"),
    waitForCount: (count, match = () => true, timeoutMs = 5000) =>
      collector.until(
        () => {
          const found = collector.events.filter(match);
          return found.length >= count ? found : undefined;
        },
        timeoutMs,
        `${count} matching events`,
      ),
    ended,
    pause,
    close,
  };
}

/**
 * Resolves with the first event matching `done`, however long that takes as long as events
 * matching `moving` keep coming; rejects when none came for `quietMs`. For work whose length
 * is the machine's (a render is CPU time: several times longer with every core busy), where a
 * fixed deadline fails a slow machine and a generous one hides a stall for as long.
 */
export async function waitWhileMoving(
  client: SseClient,
  done: (e: EventSourceMessage) => boolean,
  moving: (e: EventSourceMessage) => boolean,
  quietMs = 10_000,
): Promise<EventSourceMessage> {
  for (;;) {
    const found = client.events.find(done);
    if (found) return found;
    const seen = client.events.filter(moving).length;
    await client.waitForCount(seen + 1, (e) => moving(e) || done(e), quietMs);
  }
}

/** Opens an SSE stream over HTTP/1.1; resolves once the response headers arrived. */
export function openHttp1(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: "text/event-stream", ...headers } });
    request.once("error", reject);
    request.once("response", (response) => {
      const collector = new Collector();
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => collector.feed(chunk));
      const ended = new Promise<void>((done) => {
        response.once("end", done);
        response.once("close", done);
        response.once("error", () => done());
      });
      resolve(
        client(
          collector,
          response.statusCode ?? 0,
          response.headers,
          ended,
          () => request.destroy(),
          () => response.pause(),
        ),
      );
    });
  });
}

/** Opens an SSE stream on an existing HTTP/2 session; resolves once the headers arrived. */
export function openHttp2(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":path": path, accept: "text/event-stream", ...headers });
    stream.once("error", reject);
    stream.once("response", (responseHeaders) => {
      const collector = new Collector();
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => collector.feed(chunk));
      const ended = new Promise<void>((done) => {
        stream.once("end", done);
        stream.once("close", done);
      });
      resolve(
        client(
          collector,
          Number(responseHeaders[":status"]),
          responseHeaders,
          ended,
          () => stream.close(),
          () => stream.pause(),
        ),
      );
    });
    stream.end();
  });
}

/** Sends one HTTP/2 request on `session` and resolves with its status and body. */
export function h2Request(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    let text = "";
    let status = 0;
    let responseHeaders: Record<string, unknown> = {};
    stream.setEncoding("utf8");
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = h;
    });
    stream.on("data", (chunk: string) => {
      text += chunk;
    });
    stream.on("end", () => resolve({ status, body: text, headers: responseHeaders }));
    stream.on("error", reject);
    stream.end(body);
  });
}
