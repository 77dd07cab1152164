/**
 * Helpers for the attack tests in this folder: plain HTTP requests from a chosen loopback
 * address (Linux routes all of 127.0.0.0/8 to lo, so 127.0.0.2 is "another client"), an SSE
 * client that can do the same, metric reads, and deadline-bounded waits.
 */
import http from "node:http";
import { createAuth } from "@realtime/service";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { TEST_SECRET } from "./service.ts";

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The body as JSON, or null. */
  readonly json: { code?: string; message?: string; [key: string]: unknown } | null;
}

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** Source address, e.g. `127.0.0.2`. */
  readonly localAddress?: string;
}

/** One request on its own connection; resolves with the whole response. */
export function request(url: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers ?? {},
      agent: false,
      ...(options.localAddress && { localAddress: options.localAddress }),
    });
    req.once("error", reject);
    req.once("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.once("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Reply["json"] = null;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.end(options.body);
  });
}

/** POSTs JSON with an optional bearer token. */
export function postJson(
  url: string,
  token: string | null,
  body: unknown,
  extra: Omit<RequestOptions, "body" | "method"> = {},
): Promise<Reply> {
  return request(url, {
    ...extra,
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...extra.headers,
    },
    body: JSON.stringify(body),
  });
}

export interface Stream {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly events: EventSourceMessage[];
  /** Everything received so far. */
  text(): string;
  /** Resolves with the first event (from the start) matching `match`. */
  waitFor(
    match: (e: EventSourceMessage) => boolean,
    timeoutMs?: number,
  ): Promise<EventSourceMessage>;
  /** Resolves once `predicate(text)` holds. */
  waitForText(predicate: (text: string) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the response ended (by either side). */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens `GET url` and resolves once the response headers arrived (any status). */
export function openStream(
  url: string,
  headers: Record<string, string> = {},
  options: { localAddress?: string } = {},
): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {
      headers: { accept: "text/event-stream", ...headers },
      agent: false,
      ...(options.localAddress && { localAddress: options.localAddress }),
    });
    req.once("error", reject);
    req.once("response", (res) => {
      const events: EventSourceMessage[] = [];
      let body = "";
      const waiters = new Set<() => void>();
      const notify = () => {
        for (const waiter of [...waiters]) waiter();
      };
      const parser = createParser({ onEvent: (event) => events.push(event) });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
        parser.feed(chunk);
        notify();
      });
      const ended = new Promise<void>((done) => {
        res.once("close", done);
        res.once("end", done);
        res.once("error", () => done());
      });
      void ended.then(notify);
      const until = (check: () => boolean, timeoutMs: number, what: string) =>
        new Promise<void>((ok, fail) => {
          const attempt = () => {
            if (!check()) return false;
            waiters.delete(attempt);
            clearTimeout(timer);
            ok();
            return true;
          };
          const timer = setTimeout(() => {
            waiters.delete(attempt);
            fail(new Error(`timed out waiting for ${what}; got: ${body.slice(-500)}`));
          }, timeoutMs);
          if (!attempt()) waiters.add(attempt);
        });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        text: () => body,
        async waitFor(match, timeoutMs = 5000) {
          await until(() => events.some(match), timeoutMs, "a matching event");
          return events.find(match) as EventSourceMessage;
        },
        waitForText: (predicate, timeoutMs = 5000) =>
          until(() => predicate(body), timeoutMs, "matching text"),
        ended,
        close: () => req.destroy(),
      });
    });
  });
}

/** Resolves with the JSON body of a refused stream (after its end). */
export async function refusal(stream: Stream): Promise<{ code?: string; message?: string }> {
  await stream.ended;
  return JSON.parse(stream.text()) as { code?: string; message?: string };
}

/** An application event of `type` (no `event:` field). */
export const ofType =
  (type: string) =>
  (e: EventSourceMessage): boolean =>
    e.event === undefined && (JSON.parse(e.data) as { type?: string }).type === type;

/** A counter's value from Prometheus text, 0 when absent. */
export function metricValue(text: string, name: string, labels = ""): number {
  const escaped = `${name}${labels ? `{${labels}}` : ""}`.replace(/[{}()[\].*+?^$|\\]/g, "\\$&");
  const match = new RegExp(`^${escaped} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}

/** Polls `check` every `everyMs` until it is true; fails after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The token service of `startService` (its secret), with a clock of our choosing (tokens that expire soon). */
export function tokens(now: () => number = Date.now, secret = TEST_SECRET) {
  return createAuth(
    {
      secret,
      issuer: "realtime",
      audience: "realtime",
      tokenTtlSeconds: 3600,
      cookieName: "rt_session",
    },
    now,
  );
}
