/**
 * Load for multi-pod tests: tokens, and publishing over real HTTP to pods — `POST
 * /api/publish` with a service token (the broker's offset comes back, so every event can be
 * checked by position) or `POST /api/chat/messages` with a user token — at a bounded rate for
 * a bounded time, spread over several pods.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { createAuth } from "@realtime/service";
import { POD_SECRET } from "../pods.ts";
import { checkChannel, perfect, type StreamClient } from "../stream/index.ts";

/** A `publish`-scoped service token valid on every pod sharing `secret`. */
export function serviceToken(secret = POD_SECRET): Promise<string> {
  return createAuth({
    secret,
    issuer: "realtime",
    audience: "realtime",
    tokenTtlSeconds: 3600,
    cookieName: "rt_session",
  }).issueServiceToken({ service: "int-tests", scopes: ["publish"] });
}

/** Signs in through a pod's dev login. */
export async function login(
  podUrl: string,
  name: string,
): Promise<{ token: string; user: { id: string; name: string } }> {
  const { status, body } = await postJson(podUrl, "/api/auth/dev-login", null, { name });
  if (status !== 200) throw new Error(`dev-login on ${podUrl}: ${status} ${body}`);
  return JSON.parse(body) as { token: string; user: { id: string; name: string } };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/**
 * POSTs JSON (with `headers`) on a kept-alive connection; a connection error resolves as
 * status 0. Resolves with the status, the body text and the response headers.
 */
export function postJson(
  podUrl: string,
  path: string,
  token: string | null,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve) => {
    const request = http.request(`${podUrl}${path}`, {
      method: "POST",
      agent,
      timeout: 10_000,
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(payload),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
    });
    request.once("timeout", () => request.destroy(new Error("timeout")));
    request.once("error", () => resolve({ status: 0, body: "", headers: {} }));
    request.once("response", (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
      });
      const done = (status: number) => resolve({ status, body: text, headers: response.headers });
      response.once("end", () => done(response.statusCode ?? 0));
      response.once("error", () => done(0));
    });
    request.end(payload);
  });
}

export interface PublishLoad {
  /** Pods to publish through, in turn. */
  readonly podUrls: () => readonly string[];
  readonly token: string;
  readonly channels: readonly string[];
  /** Target events per second, over all workers. */
  readonly rate: number;
  /** Stop after this long, in ms… */
  readonly durationMs: number;
  /** …or after this many events, whichever comes first. */
  readonly maxEvents?: number;
  /** Requests in flight at most. Default 16. */
  readonly concurrency?: number;
  /** Keep-alive connections per pod, requests pipelined on them. Default 12. */
  readonly connectionsPerPod?: number;
  /** Stops early when aborted. */
  readonly signal?: AbortSignal;
}

export interface PublishResult {
  /** Per channel: offset → the event's `message`, for every accepted event. */
  readonly accepted: Map<string, Map<number, string>>;
  /** Statuses other than 202, by status. */
  readonly failures: Map<number, number>;
  readonly sent: number;
  readonly elapsedMs: number;
  /** Accepted events per second. */
  readonly rate: number;
}

/**
 * Publishes `{ type: "tick", message: "<channel>#<n>" }` events round-robin over the channels
 * and pods through `POST /api/publish`, paced to `rate`.
 */
export async function publishLoad(load: PublishLoad): Promise<PublishResult> {
  const accepted = new Map<string, Map<number, string>>(
    load.channels.map((c) => [c, new Map<number, string>()]),
  );
  const failures = new Map<number, number>();
  const start = performance.now();
  const max = load.maxEvents ?? Number.POSITIVE_INFINITY;
  const pool = new PipelinedPool(load.connectionsPerPod ?? 12);
  let next = 0;
  let count = 0;
  const worker = async () => {
    for (;;) {
      const n = next++;
      const due = (n / load.rate) * 1000;
      const elapsed = performance.now() - start;
      if (n >= max || elapsed >= load.durationMs || load.signal?.aborted) return;
      if (due > elapsed) await delay(due - elapsed);
      const channel = load.channels[n % load.channels.length] as string;
      const pods = load.podUrls();
      const pod = pods[n % pods.length] as string;
      const message = `${channel}#${n}`;
      const { status, body } = await pool.post(pod, "/api/publish", load.token, {
        channel,
        event: { type: "tick", message },
      });
      count++;
      if (status === 202) {
        const { offset } = JSON.parse(body) as { offset: number };
        accepted.get(channel)?.set(offset, message);
      } else {
        failures.set(status, (failures.get(status) ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: load.concurrency ?? 16 }, worker));
  } finally {
    pool.close();
  }
  const elapsedMs = performance.now() - start;
  const total = [...accepted.values()].reduce((sum, m) => sum + m.size, 0);
  return { accepted, failures, sent: count, elapsedMs, rate: (total / elapsedMs) * 1000 };
}

/** The highest accepted offset per channel (what every subscriber must end with). */
export function topOffsets(result: PublishResult): Map<string, number> {
  return new Map(
    [...result.accepted].map(([channel, offsets]) => [channel, Math.max(0, ...offsets.keys())]),
  );
}

/**
 * Asserts that every client got every accepted `tick` of its channels once, in order, with no
 * reset and nothing it did not subscribe to — waiting up to `timeoutMs` for the last ones.
 */
export async function assertComplete(
  clients: readonly StreamClient[],
  published: PublishResult,
  timeoutMs = 20_000,
): Promise<void> {
  const tops = topOffsets(published);
  for (const client of clients) {
    const owed = new Map(client.channels.map((c) => [c, tops.get(c) ?? 0]));
    await client.untilOffsets(owed, timeoutMs);
  }
  for (const [i, client] of clients.entries()) {
    assert.deepEqual(client.strays, [], `client ${i}`);
    for (const channel of client.channels) {
      const log = client.log.get(channel);
      assert.ok(log, `client ${i} ${channel}`);
      const check = checkChannel(log, "tick", published.accepted.get(channel) ?? new Map());
      assert.deepEqual(check, perfect(check), `client ${i} ${channel}: ${JSON.stringify(check)}`);
    }
  }
}

interface Pending {
  resolve(result: { status: number; body: string }): void;
}

/**
 * HTTP/1.1 POSTs pipelined on a few raw keep-alive sockets per pod. Much cheaper per request
 * than `node:http` on the client side, which matters when the test process, the pods and
 * Redis share two cores and the load must reach 1 event per ms. Responses come back in
 * request order (HTTP/1.1 pipelining); a socket that fails answers its pending requests with
 * status 0.
 */
class PipelinedPool {
  readonly #perPod: number;
  readonly #sockets = new Map<string, { turn: number; sockets: PipelinedSocket[] }>();

  constructor(perPod: number) {
    this.#perPod = perPod;
  }

  post(podUrl: string, path: string, token: string, body: unknown) {
    let pod = this.#sockets.get(podUrl);
    if (!pod) {
      pod = { turn: 0, sockets: [] };
      this.#sockets.set(podUrl, pod);
    }
    const index = pod.turn++ % this.#perPod;
    let socket = pod.sockets[index];
    if (!socket || socket.dead) {
      socket = new PipelinedSocket(new URL(podUrl));
      pod.sockets[index] = socket;
    }
    return socket.post(path, token, JSON.stringify(body));
  }

  close(): void {
    for (const pod of this.#sockets.values()) for (const socket of pod.sockets) socket.close();
    this.#sockets.clear();
  }
}

class PipelinedSocket {
  readonly #socket: net.Socket;
  readonly #host: string;
  readonly #pending: Pending[] = [];
  #buffer = "";
  dead = false;

  constructor(url: URL) {
    this.#host = url.host;
    this.#socket = net.connect(Number(url.port), url.hostname);
    this.#socket.setNoDelay(true);
    this.#socket.setEncoding("utf8");
    this.#socket.on("data", (chunk: string) => this.#read(chunk));
    const fail = () => {
      this.dead = true;
      for (const pending of this.#pending.splice(0)) pending.resolve({ status: 0, body: "" });
    };
    this.#socket.once("error", fail);
    this.#socket.once("close", fail);
  }

  post(path: string, token: string, payload: string): Promise<{ status: number; body: string }> {
    if (this.dead) return Promise.resolve({ status: 0, body: "" });
    return new Promise((resolve) => {
      this.#pending.push({ resolve });
      this.#socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${this.#host}\r\nContent-Type: application/json\r\n` +
          `Authorization: Bearer ${token}\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n` +
          payload,
      );
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const end = this.#buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.#buffer.slice(0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      // Bodies here are ASCII JSON, so characters are bytes.
      if (this.#buffer.length < end + 4 + length) return;
      const body = this.#buffer.slice(end + 4, end + 4 + length);
      this.#buffer = this.#buffer.slice(end + 4 + length);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      this.#pending.shift()?.resolve({ status, body });
    }
  }
}
