/**
 * An in-memory {@link Connection} for unit tests of the hub: it records what was written and
 * lets the test play a peer that stops reading. Integration tests use real sockets instead.
 */
import type { Connection } from "../connection.ts";

export class FakeConnection implements Connection {
  readonly chunks: string[] = [];
  /** What `write` returns: false plays a peer whose receive window is full. */
  accepting = true;
  /** Bytes the fake pretends are queued (grows by each write while not accepting). */
  queued = 0;
  ended = false;
  destroyed = false;
  readonly #closeListeners: Array<() => void> = [];
  readonly #drainListeners: Array<() => void> = [];

  write(chunk: string): boolean {
    if (this.closed || this.ended) return false;
    this.chunks.push(chunk);
    if (!this.accepting) this.queued += Buffer.byteLength(chunk);
    return this.accepting;
  }

  get bufferedBytes(): number {
    return this.queued;
  }

  get text(): string {
    return this.chunks.join("");
  }

  /**
   * Ends after what is queued has been sent, as a socket does: the close comes at once when
   * nothing is queued, else only once the peer read it ({@link drain}) — never, for a peer
   * that does not read.
   */
  end(): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    if (this.queued === 0) this.#fireClose();
  }

  destroy(): void {
    if (this.closed) return;
    this.destroyed = true;
    this.#fireClose();
  }

  /** True once the connection is gone (its close fired). */
  get closed(): boolean {
    return this.#gone;
  }

  /** The peer hangs up. */
  hangUp(): void {
    if (this.closed) return;
    this.ended = true;
    this.#fireClose();
  }

  /** The peer read everything. */
  drain(): void {
    this.queued = 0;
    this.accepting = true;
    if (this.ended) {
      this.#fireClose();
      return;
    }
    for (const listener of this.#drainListeners) listener();
  }

  onClose(listener: () => void): void {
    if (this.closed) queueMicrotask(listener);
    else this.#closeListeners.push(listener);
  }

  onDrain(listener: () => void): void {
    this.#drainListeners.push(listener);
  }

  #gone = false;

  #fireClose(): void {
    if (this.#gone) return;
    this.#gone = true;
    for (const listener of this.#closeListeners.splice(0)) listener();
  }
}
