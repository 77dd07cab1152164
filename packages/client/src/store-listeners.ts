/**
 * The listeners of an external store (`useSyncExternalStore`'s `subscribe`): the store does
 * its work — a subscription, a fetch — only while someone listens, starting with the first
 * listener and stopping after the last.
 */
export class StoreListeners {
  readonly #listeners = new Set<() => void>();
  readonly #start: () => void;
  readonly #stop: () => void;

  constructor(start: () => void, stop: () => void) {
    this.#start = start;
    this.#stop = stop;
  }

  /** Adds `listener` (the same function twice counts twice); returns its removal. */
  add(listener: () => void): () => void {
    const wrapper = () => listener();
    this.#listeners.add(wrapper);
    if (this.#listeners.size === 1) this.#start();
    return () => {
      if (!this.#listeners.delete(wrapper) || this.#listeners.size > 0) return;
      this.#stop();
    };
  }

  notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
