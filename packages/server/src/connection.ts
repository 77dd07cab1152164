/**
 * The seam between the SSE core and HTTP. The hub writes strings to a {@link Connection} and
 * knows nothing else about the transport; node:http and node:http2 are two small adapters.
 */
import type { ServerResponse } from "node:http";
import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";

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
}

/** Response headers of an SSE stream (no `Connection` header: it is forbidden on HTTP/2). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-store, no-transform",
  "x-accel-buffering": "no",
};

/** Adapter for an HTTP/1.1 `ServerResponse` (node:http). Sends the headers immediately. */
export class NodeHttpConnection implements Connection {
  readonly #res: ServerResponse;
  #closed = false;

  constructor(res: ServerResponse, headers: Readonly<Record<string, string>> = SSE_HEADERS) {
    this.#res = res;
    res.writeHead(200, headers);
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    res.once("close", () => {
      this.#closed = true;
    });
  }

  write(chunk: string): boolean {
    if (this.#closed) return false;
    return this.#res.write(chunk);
  }

  get bufferedBytes(): number {
    return this.#res.writableLength + (this.#res.socket?.writableLength ?? 0);
  }

  end(): void {
    if (!this.#closed) this.#res.end();
  }

  destroy(): void {
    this.#closed = true;
    this.#res.destroy();
  }

  get closed(): boolean {
    return this.#closed || this.#res.destroyed;
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.#res.once("close", listener);
  }

  onDrain(listener: () => void): void {
    this.#res.on("drain", listener);
  }
}

/** Adapter for an HTTP/2 stream (node:http2 core API). Sends the headers immediately. */
export class Http2StreamConnection implements Connection {
  readonly #stream: ServerHttp2Stream;

  constructor(stream: ServerHttp2Stream, headers: Readonly<Record<string, string>> = SSE_HEADERS) {
    this.#stream = stream;
    const h2headers: OutgoingHttpHeaders = { ":status": 200, ...headers };
    stream.respond(h2headers);
  }

  write(chunk: string): boolean {
    if (this.closed) return false;
    return this.#stream.write(chunk);
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
    else this.#stream.once("close", listener);
  }

  onDrain(listener: () => void): void {
    this.#stream.on("drain", listener);
  }
}
