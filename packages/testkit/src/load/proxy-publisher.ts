/**
 * `POST /api/publish` through the TLS HTTP/2 proxy of the nginx stack at a paced rate, over
 * a pool of shared connections, for the rolling-restart tests.
 */
import type http2 from "node:http2";
import { setTimeout as delay } from "node:timers/promises";
import type { H2Sessions } from "../stream/transport.ts";

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
