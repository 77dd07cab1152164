/**
 * Requests to pods over HTTP/1.1 or cleartext HTTP/2, whichever the pod speaks: a pool of
 * kept-alive HTTP/1.1 sockets per pod, and one HTTP/2 session per pod and pool (a browser puts
 * every request to an origin on one connection), replaced when it closes. A request that gets
 * no complete answer — refused, cut, or not answered within its timeout (a frozen pod) —
 * resolves with status 0: its outcome is unknown.
 */
import http from "node:http";
import http2 from "node:http2";

export interface PodAddress {
  readonly port: number;
  readonly h2c: boolean;
}

export interface Answer {
  readonly status: number;
  readonly body: string;
  /** `Retry-After`, in ms (0 when absent). */
  readonly retryAfterMs: number;
}

/** One HTTP/2 session per pod port. */
export class H2Pool {
  readonly #sessions = new Map<number, http2.ClientHttp2Session>();

  get(port: number): http2.ClientHttp2Session {
    const current = this.#sessions.get(port);
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const forget = () => {
      if (this.#sessions.get(port) === session) this.#sessions.delete(port);
    };
    session.once("close", forget);
    session.once("goaway", forget);
    this.#sessions.set(port, session);
    return session;
  }

  close(): void {
    for (const session of this.#sessions.values()) session.destroy();
    this.#sessions.clear();
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export function closeAgents(): void {
  agent.destroy();
}

export function request(
  pod: PodAddress,
  h2: H2Pool,
  options: {
    readonly method: "GET" | "POST";
    readonly path: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly body?: string;
    readonly timeoutMs: number;
  },
): Promise<Answer> {
  return pod.h2c ? h2Request(pod.port, h2, options) : h1Request(pod.port, options);
}

function retryAfter(value: unknown): number {
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
}

function h1Request(
  port: number,
  options: {
    method: string;
    path: string;
    headers: Readonly<Record<string, string>>;
    body?: string;
    timeoutMs: number;
  },
): Promise<Answer> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (answer: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const headers: Record<string, string | number> = { ...options.headers };
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(options.body);
    }
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: options.method,
      path: options.path,
      agent,
      headers,
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ status: 0, body: "", retryAfterMs: 0 });
    }, options.timeoutMs);
    req.once("error", () => done({ status: 0, body: "", retryAfterMs: 0 }));
    req.once("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.once("end", () =>
        done({
          status: res.statusCode ?? 0,
          body: text,
          retryAfterMs: retryAfter(res.headers["retry-after"]),
        }),
      );
      res.once("error", () => done({ status: 0, body: "", retryAfterMs: 0 }));
      res.once("close", () => done({ status: 0, body: "", retryAfterMs: 0 }));
    });
    req.end(options.body);
  });
}

function h2Request(
  port: number,
  h2: H2Pool,
  options: {
    method: string;
    path: string;
    headers: Readonly<Record<string, string>>;
    body?: string;
    timeoutMs: number;
  },
): Promise<Answer> {
  return new Promise((resolve) => {
    let settled = false;
    let stream: http2.ClientHttp2Stream | undefined;
    const done = (answer: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      resolve(answer);
    };
    const timer = setTimeout(
      () => done({ status: 0, body: "", retryAfterMs: 0 }),
      options.timeoutMs,
    );
    try {
      stream = h2.get(port).request({
        ":method": options.method,
        ":path": options.path,
        ...options.headers,
        ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
      });
    } catch {
      done({ status: 0, body: "", retryAfterMs: 0 });
      return;
    }
    let status = 0;
    let after = 0;
    let text = "";
    stream.setEncoding("utf8");
    stream.once("response", (headers) => {
      status = Number(headers[":status"] ?? 0);
      after = retryAfter(headers["retry-after"]);
    });
    stream.on("data", (chunk: string) => {
      text += chunk;
    });
    // "end" is the whole answer; a "close" without it is a cut (unknown outcome).
    stream.once("end", () => done({ status, body: text, retryAfterMs: after }));
    stream.once("close", () => done({ status: 0, body: "", retryAfterMs: 0 }));
    stream.once("error", () => done({ status: 0, body: "", retryAfterMs: 0 }));
    stream.end(options.body);
  });
}
