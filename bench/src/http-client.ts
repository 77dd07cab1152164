/**
 * A small HTTP/1.1 keep-alive client on raw sockets for the publisher: pipelined requests on a
 * few connections, responses matched in order. Far cheaper per request than node:http's
 * client, so a publish-throughput run measures the server, not this.
 */
import http2 from "node:http2";
import net from "node:net";

export interface Request {
  method: "GET" | "POST";
  path: string;
  /** Header name → value; Host and Content-Length are added. */
  headers?: Record<string, string>;
  body?: string;
}

interface Pending {
  resolve: (status: number) => void;
  reject: (error: Error) => void;
}

class Conn {
  readonly socket: net.Socket;
  readonly queue: Pending[] = [];
  #buf: Buffer = Buffer.alloc(0);
  #status = 0;
  /** -1: reading a head; ≥ 0: body bytes still to skip; -2: chunked body. */
  #left = -1;
  closed = false;

  constructor(host: string, port: number, localAddress: string | undefined) {
    this.socket = net.connect({ host, port, localAddress });
    this.socket.setNoDelay(true);
    this.socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    const fail = (error: Error) => {
      this.closed = true;
      for (const p of this.queue.splice(0)) p.reject(error);
    };
    this.socket.on("error", fail);
    this.socket.on("close", () => fail(new Error("connection closed")));
  }

  #onData(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    for (let guard = 0; guard < 100_000; guard++) {
      if (this.#left === -1) {
        const at = this.#buf.indexOf("\r\n\r\n");
        if (at < 0) return;
        const head = this.#buf.toString("latin1", 0, at);
        this.#buf = this.#buf.subarray(at + 4);
        this.#status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length:\s*([0-9]+)/i.exec(head);
        if (length) this.#left = Number(length[1]);
        else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) this.#left = -2;
        else this.#left = 0;
      }
      if (this.#left === -2) {
        // Skip chunks until the last one (size 0) and its blank line.
        const end = this.#buf.indexOf("0\r\n\r\n");
        if (end < 0 || (end > 0 && this.#buf[end - 1] !== 10)) return;
        this.#buf = this.#buf.subarray(end + 5);
        this.#left = 0;
      }
      if (this.#buf.length < this.#left) return;
      this.#buf = this.#buf.subarray(this.#left);
      this.#left = -1;
      this.queue.shift()?.resolve(this.#status);
    }
  }
}

export class HttpClient {
  readonly #host: string;
  readonly #port: number;
  readonly #conns: Conn[] = [];

  constructor(host: string, port: number, connections: number, localAddress?: string) {
    this.#host = host;
    this.#port = port;
    for (let i = 0; i < connections; i++) this.#conns.push(new Conn(host, port, localAddress));
  }

  /** Sends a request on the least busy connection; resolves with the status code. */
  send(request: Request): Promise<number> {
    let best: Conn | undefined;
    for (const c of this.#conns) {
      if (c.closed) continue;
      if (!best || c.queue.length < best.queue.length) best = c;
    }
    if (!best) return Promise.reject(new Error("no open publisher connection"));
    const conn = best;
    const body = request.body ?? "";
    let head = `${request.method} ${request.path} HTTP/1.1\r\nHost: ${this.#host}:${this.#port}\r\n`;
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      head += `${name}: ${value}\r\n`;
    }
    head += `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    return new Promise<number>((resolve, reject) => {
      conn.queue.push({ resolve, reject });
      conn.socket.write(head + body);
    });
  }

  close(): void {
    for (const c of this.#conns) c.socket.destroy();
  }
}

/** The same interface over one cleartext HTTP/2 session (prior knowledge), for h2c servers. */
export class H2Client {
  readonly #session: http2.ClientHttp2Session;

  constructor(host: string, port: number) {
    this.#session = http2.connect(`http://${host}:${port}`);
    this.#session.on("error", () => {});
  }

  send(request: Request): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const body = request.body ?? "";
      const stream = this.#session.request({
        ":method": request.method,
        ":path": request.path,
        ...request.headers,
        "content-length": String(Buffer.byteLength(body)),
      });
      let status = 0;
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
      });
      stream.on("data", () => {});
      stream.on("end", () => resolve(status));
      stream.on("error", reject);
      stream.end(body);
    });
  }

  close(): void {
    this.#session.destroy();
  }
}

export interface Client {
  send(request: Request): Promise<number>;
  close(): void;
}

/** An HTTP/1.1 client with `connections` connections, or one HTTP/2 session when `h2`. */
export function clientFor(
  target: { host: string; port: number; h2: boolean },
  connections: number,
): Client {
  return target.h2
    ? new H2Client(target.host, target.port)
    : new HttpClient(target.host, target.port, connections);
}
