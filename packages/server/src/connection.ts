/**
 * The seam between the SSE core and HTTP. The hub writes strings to a {@link Connection} and
 * knows nothing else about the transport; node:http and node:http2 are two small adapters.
 */
import type { ServerResponse } from "node:http";
import type { Http2ServerResponse, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import { detachable, detachSocket } from "./http1-detach.ts";
import { detachCompat } from "./http2-detach.ts";

export interface Connection {
  /**
   * Queues `chunk` for the peer. Returns false when the transport's buffer is above its
   * high-water mark: the chunk was still queued, but the peer is not keeping up.
   */
  write(chunk: string): boolean;
  /** Bytes queued in user space and not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /** Ends the stream after what is queued has been sent. */
  end(): void;
  /** Drops the stream at once, discarding what is queued (for peers that stopped reading). */
  destroy(): void;
  readonly closed: boolean;
  /** Called once when the stream is gone, whoever ended it. */
  onClose(listener: () => void): void;
  /** Called when the transport's buffer has drained below its high-water mark. */
  onDrain(listener: () => void): void;
  /**
   * Queues bytes shared with many connections (same result as `write(chunk.text)`). Optional:
   * without it the hub writes `chunk.text`.
   */
  writeShared?(chunk: SharedChunk): boolean;
}

/**
 * Text written unchanged to many connections (one channel's events of one tick, for every
 * stream that carries only that channel). Its UTF-8 bytes, and the same bytes framed as one
 * HTTP/1.1 chunk, are each made once, on first use, and then written as they are to every
 * connection: no per-connection encoding or framing. Never mutated once made.
 */
export class SharedChunk {
  readonly text: string;
  #bytes: Buffer | undefined;
  #framed: Buffer | undefined;

  constructor(text: string) {
    this.text = text;
  }

  /** The UTF-8 bytes of {@link text}. */
  get bytes(): Buffer {
    if (this.#bytes === undefined) this.#bytes = Buffer.from(this.text, "utf8");
    return this.#bytes;
  }

  /** {@link bytes} as one chunk of an HTTP/1.1 chunked body: `<size hex>\r\n<bytes>\r\n`. */
  get framed(): Buffer {
    if (this.#framed === undefined) {
      const bytes = this.bytes;
      const head = `${bytes.length.toString(16)}\r\n`;
      const framed = Buffer.allocUnsafe(head.length + bytes.length + 2);
      framed.write(head, 0, "latin1");
      bytes.copy(framed, head.length);
      framed.write("\r\n", head.length + bytes.length, "latin1");
      this.#framed = framed;
    }
    return this.#framed;
  }
}

/** Response headers of an SSE stream (no `Connection` header: it is forbidden on HTTP/2). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-store, no-transform",
  "x-accel-buffering": "no",
};

/**
 * Adapter for an HTTP/1.1 `ServerResponse` (node:http). Sends the headers immediately.
 *
 * After the headers, the body is written straight to the socket, framed here (one chunk per
 * write when the response is chunked, as it is for HTTP/1.1): the response object's own write
 * path costs a cork, a nextTick and four queued buffers per write, and cannot take bytes that
 * are already framed.
 *
 * When it can (`http1-detach.ts`: nearly always), the socket is then taken from node:http
 * altogether, as an upgrade's is: the parser, the request and the response are freed, and
 * the stream costs its socket alone. The head says `Connection: close` and the socket is
 * closed when the stream ends (an SSE connection is not reused); the response's `close`
 * listeners (the leases taken for the stream) are called when the socket closes; input from
 * the client after its request, which an SSE client never sends, drops the stream; the
 * client's end (FIN) closes it. Otherwise (a request pipelined behind this one, say) the
 * response stays with node:http and `end()` goes through it.
 */
export class NodeHttpConnection implements Connection {
  /** The response while node:http keeps the socket (null once the socket is detached). */
  readonly #res: ServerResponse | null;
  /** The socket, once the headers went out on it (null: write through the response). */
  readonly #socket: Socket | null;
  readonly #chunked: boolean;
  #closed = false;
  #closeListeners: CloseListeners = null;

  constructor(res: ServerResponse, headers: Readonly<Record<string, string>> = SSE_HEADERS) {
    const detach = detachable(res);
    // The head and what the stream writes in this tick (its `ready` event) leave in one
    // write: one syscall, one segment, where there were two.
    const corked = res.socket;
    if (corked && !corked.destroyed) {
      corked.cork();
      process.nextTick(uncork, corked);
    }
    res.writeHead(200, detach ? { ...headers, connection: "close" } : headers);
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    this.#chunked = res.chunkedEncoding === true;
    const detached = detach ? detachSocket(res) : null;
    if (detached !== null) {
      const socket = detached.socket;
      this.#res = null;
      this.#socket = socket;
      if (detached.closeListeners.length > 0) this.#closeListeners = detached.closeListeners;
      socket.on("close", () => this.#onClose());
      socket.on("error", ignore);
      socket.on("end", destroyThis);
      socket.on("data", destroyThis);
      socket.resume();
      return;
    }
    this.#res = res;
    // One listener of ours on the response, whoever asks to hear of its close (see onClose).
    res.on("close", () => this.#onClose());
    // Direct writes only when the headers were handed to this socket (not queued behind an
    // earlier pipelined response).
    const socket = res.socket;
    this.#socket = socket && res.headersSent && res.writableLength === 0 ? socket : null;
  }

  #onClose(): void {
    this.#closed = true;
    const listeners = this.#closeListeners;
    this.#closeListeners = null;
    fire(listeners);
  }

  write(chunk: string): boolean {
    if (this.#closed) return false;
    const socket = this.#socket;
    if (socket === null) return (this.#res as ServerResponse).write(chunk);
    if (chunk.length === 0) return socket.writableLength < socket.writableHighWaterMark;
    if (!this.#chunked) return socket.write(chunk);
    return socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`);
  }

  writeShared(chunk: SharedChunk): boolean {
    if (this.#closed) return false;
    const socket = this.#socket;
    if (socket === null) return (this.#res as ServerResponse).write(chunk.bytes);
    return socket.write(this.#chunked ? chunk.framed : chunk.bytes);
  }

  get bufferedBytes(): number {
    // `res.writableLength` already includes its socket's queue: adding the socket's again
    // counted every queued byte twice (the bound acted at half its size).
    const socket = this.#socket;
    return socket !== null ? socket.writableLength : (this.#res as ServerResponse).writableLength;
  }

  end(): void {
    if (this.closed) return;
    const res = this.#res;
    if (res !== null) {
      res.end();
      return;
    }
    // Detached: the last chunk, then the socket goes once it is flushed.
    const socket = this.#socket as Socket;
    if (!socket.writable) return;
    const destroy = () => socket.destroy();
    if (this.#chunked) socket.end(LAST_CHUNK, destroy);
    else socket.end(destroy);
  }

  destroy(): void {
    this.#closed = true;
    if (this.#res !== null) this.#res.destroy();
    else this.#socket?.destroy();
  }

  get closed(): boolean {
    return this.#closed || (this.#res ?? (this.#socket as Socket)).destroyed;
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.#closeListeners = added(this.#closeListeners, listener);
  }

  onDrain(listener: () => void): void {
    if (this.#socket) this.#socket.on("drain", listener);
    else this.#res?.on("drain", listener);
  }
}

function uncork(socket: Socket): void {
  socket.uncork();
}

/** The end of a chunked body. */
const LAST_CHUNK = "0\r\n\r\n";

function ignore(): void {}

/** A detached socket's input or end: the client is gone, or is not an SSE client. */
function destroyThis(this: Socket): void {
  this.destroy();
}

/** Where an HTTP/2 stream keeps its {@link Http2StreamConnection}, for the shared listeners. */
const kConnection = Symbol("realtime.connection");

/**
 * Adapter for an HTTP/2 stream (node:http2 core API). Sends the headers immediately.
 *
 * Given the compatibility response the stream came with (a framework's, as Fastify's), it
 * lets go of it and its request once the headers are out (`http2-detach.ts`): the response's
 * `close` listeners (the leases taken for the stream) are called when the stream closes.
 */
export class Http2StreamConnection implements Connection {
  readonly #stream: ServerHttp2Stream;
  #closeListeners: CloseListeners = null;
  /** The one drain listener (the stream's, nearly always) alone, else a list. */
  #drainListeners: (() => void) | CloseListeners = null;

  constructor(
    stream: ServerHttp2Stream,
    headers: Readonly<Record<string, string>> = SSE_HEADERS,
    response?: Http2ServerResponse,
  ) {
    this.#stream = stream;
    // The head as a flat list of names and values, emptied once sent: node:http2 keeps what
    // `respond` was given, for `sentHeaders`, for the stream's whole life. An object is kept
    // as a null-prototype copy (a dictionary: ~1 KB with the security headers) holding the
    // request id (a UUID built of 14 cons strings, ~0.45 KB); a list is kept as it is, and
    // is ours to empty. (`sentHeaders` reads `{}` afterwards: nothing here asks it.)
    const head: string[] = [":status", "200"];
    for (const name in headers) head.push(name, headers[name] as string);
    stream.respond(head);
    head.length = 0;
    // One listener of ours per event, added before the compatibility layer's go (see
    // detachCompat): the stream's listener lists then hold one function each, not arrays.
    // Shared by every stream, not two closures and their context per stream (~150 B): they
    // find the connection on the stream, under a symbol of ours.
    (stream as unknown as Record<symbol, unknown>)[kConnection] = this;
    stream.on("close", Http2StreamConnection.#onStreamClose);
    stream.on("drain", Http2StreamConnection.#onStreamDrain);
    const moved = response === undefined ? null : detachCompat(stream, response);
    if (moved !== null && moved.length > 0) this.#closeListeners = moved;
  }

  static #onStreamClose(this: ServerHttp2Stream): void {
    // biome-ignore lint/complexity/noThisInStatic: an emitter's listener; `this` is the stream.
    const connection = (this as unknown as Record<symbol, unknown>)[kConnection];
    if (!(connection instanceof Http2StreamConnection)) return;
    const listeners = connection.#closeListeners;
    connection.#closeListeners = null;
    connection.#drainListeners = null;
    fire(listeners);
  }

  static #onStreamDrain(this: ServerHttp2Stream): void {
    // biome-ignore lint/complexity/noThisInStatic: an emitter's listener; `this` is the stream.
    const connection = (this as unknown as Record<symbol, unknown>)[kConnection];
    if (!(connection instanceof Http2StreamConnection)) return;
    const listeners = connection.#drainListeners;
    if (typeof listeners === "function") listeners();
    else fire(listeners);
  }

  write(chunk: string): boolean {
    if (this.closed) return false;
    return this.#stream.write(chunk);
  }

  writeShared(chunk: SharedChunk): boolean {
    if (this.closed) return false;
    return this.#stream.write(chunk.bytes);
  }

  get bufferedBytes(): number {
    return this.#stream.writableLength;
  }

  end(): void {
    if (!this.closed) this.#stream.end();
  }

  destroy(): void {
    // NGHTTP2_CANCEL (8): only this stream goes; the session and its other streams stay.
    if (!this.#stream.destroyed) this.#stream.close(8);
  }

  get closed(): boolean {
    return this.#stream.destroyed || this.#stream.closed;
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.#closeListeners = added(this.#closeListeners, listener);
  }

  onDrain(listener: () => void): void {
    if (this.closed) return;
    const listeners = this.#drainListeners;
    if (listeners === null) this.#drainListeners = listener;
    else
      this.#drainListeners = added(
        typeof listeners === "function" ? [listeners] : listeners,
        listener,
      );
  }
}

/**
 * The close listeners of one connection (the hub's and the stream's, and the drain's at
 * shutdown), kept by the adapter behind a single listener on the transport. An idle stream
 * holds them for hours: each `emitter.once()` costs a wrapper closure, its context and a
 * property (~150 bytes in Node 24) on top of the listener. The list is an exact-size array,
 * copied on the (rare) add: `push` and spreading over-allocate (200 bytes for two listeners
 * instead of 64).
 */
type CloseListeners = readonly (() => void)[] | null;

function added(listeners: CloseListeners, listener: () => void): CloseListeners {
  return listeners === null ? [listener] : listeners.concat(listener);
}

/** Calls each listener, in the order they were added. */
function fire(listeners: CloseListeners): void {
  if (listeners !== null) for (const listener of listeners) listener();
}
