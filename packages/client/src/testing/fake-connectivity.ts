/** A network the test switches on and off. */
import type { Connectivity } from "../connectivity.ts";

export class FakeConnectivity implements Connectivity {
  #online: boolean;
  readonly #listeners = new Set<(online: boolean) => void>();

  constructor(online = true) {
    this.#online = online;
  }

  /** How many listeners are subscribed now. */
  get listeners(): number {
    return this.#listeners.size;
  }

  isOnline(): boolean {
    return this.#online;
  }

  subscribe(listener: (online: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Changes the network and tells every listener, as the browser's events would. */
  set(online: boolean): void {
    this.#online = online;
    for (const listener of [...this.#listeners]) listener(online);
  }
}
