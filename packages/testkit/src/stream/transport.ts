/**
 * How a {@link StreamClient} reaches the service: one `GET /api/events` over HTTP/1.1 (a
 * fresh connection per stream, as a browser's `EventSource` on HTTP/1.1 does) or as a stream
 * of a shared HTTP/2 connection (what a browser does behind a TLS HTTP/2 proxy). The client
 * holds the `EventSource` semantics; a transport only moves bytes.
 */
import http from "node:http";
import http2 from "node:http2";

export interface StreamHandlers {
  /** Called once, first: the response's status (0: no response, the connection failed). */
  status(code: number): void;
  /** A chunk of the body: the event stream, or the refusal's JSON. */
  data(chunk: string): void;
  /** Called once, last: the body ended, the connection dropped or the client cancelled. */
  end(): void;
}

/** Opens `GET <base><path>` with `headers`; the returned function drops the stream. */
export type StreamTransport = (
  base: string,
  path: string,
  headers: Readonly<Record<string, string>>,
  on: StreamHandlers,
) => () => void;

/** Calls `status` once (0 unless a response came first) and `end` once. */
function once(on: StreamHandlers) {
  let responded = false;
  let ended = false;
  return {
    status(code: number) {
      if (responded) return;
      responded = true;
      on.status(code);
    },
    data: (chunk: string) => on.data(chunk),
    end() {
      if (ended) return;
      ended = true;
      this.status(0);
      on.end();
    },
  };
}

/** HTTP/1.1, one fresh connection per stream. */
export const http1: StreamTransport = (base, path, headers, handlers) => {
  const on = once(handlers);
  const request = http.get(`${base}${path}`, { headers, agent: false });
  request.once("error", () => on.end());
  request.once("response", (response) => {
    on.status(response.statusCode ?? 0);
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => on.data(chunk));
    response.once("end", () => on.end());
    response.once("close", () => on.end());
    response.once("error", () => on.end());
  });
  return () => request.destroy();
};

/** A stream on connection `slot` of `sessions` (the base URL is the pool's origin). */
export function h2(sessions: H2Sessions, slot: number): StreamTransport {
  return (_base, path, headers, handlers) => {
    const on = once(handlers);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = sessions.get(slot).request({ ":path": path, ...headers });
    } catch {
      on.end();
      return () => {};
    }
    stream.setEncoding("utf8");
    stream.once("response", (response) => on.status(Number(response[":status"] ?? 0)));
    stream.on("data", (chunk: string) => on.data(chunk));
    stream.once("end", () => on.end());
    stream.once("close", () => on.end());
    stream.once("error", () => on.end());
    return () => stream.close(http2.constants.NGHTTP2_CANCEL);
  };
}

/**
 * A few TLS HTTP/2 connections to one origin shared by many streams (a browser puts every tab
 * of an origin on one connection), accepting the stack's self-signed certificate; `get(i)`
 * always returns a usable one, replacing it when the proxy says GOAWAY or the connection drops.
 */
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
