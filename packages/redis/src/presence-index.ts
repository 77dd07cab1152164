/**
 * Which channels this pod must keep in its Redis index (`<prefix>:{presence}:index:<podId>`),
 * the list a reaper walks when the pod dies. A channel is in the index while the pod has a
 * connection or owns a grace period there.
 *
 * The index lives on another Cluster slot than the channel, so it cannot be updated in the
 * channel's script: a channel is registered (and awaited) *before* the first write of this pod
 * to it, and dropped lazily, with the next heartbeat, once nothing of the pod is left there.
 * That order means a crash can leave an indexed channel with nothing in it (harmless) but
 * never an entry no reaper would find. No I/O here: the store passes the registration call.
 */
import type { ChannelName } from "@realtime/protocol";

interface Held {
  readonly streams: Set<string>;
  readonly graces: Set<string>;
  /** Work under way that may leave something of the pod in the channel (a reap). */
  pins: number;
}

export class PresenceIndex {
  readonly #held = new Map<ChannelName, Held>();
  /** Registered (or being registered) channels → the registration. */
  readonly #registered = new Map<ChannelName, Promise<void>>();
  /** Registered channels to register again on their next write (see forgetRegistrations). */
  readonly #stale = new Set<ChannelName>();

  /**
   * Resolves once every channel in `channels` is in the index, calling `register` for the
   * ones that are not (nor on their way). A failed registration is forgotten, so it is retried.
   */
  async ensure(
    channels: Iterable<ChannelName>,
    register: (channels: ChannelName[]) => Promise<void>,
  ): Promise<void> {
    const waits: Promise<void>[] = [];
    const missing: ChannelName[] = [];
    for (const channel of new Set(channels)) {
      const pending = this.#stale.has(channel) ? undefined : this.#registered.get(channel);
      if (pending !== undefined) waits.push(pending);
      else missing.push(channel);
    }
    if (missing.length > 0) {
      const registering = register(missing);
      for (const channel of missing) {
        this.#stale.delete(channel);
        this.#registered.set(channel, registering);
      }
      registering.catch(() => {
        for (const channel of missing) {
          if (this.#registered.get(channel) === registering) this.#registered.delete(channel);
        }
      });
      waits.push(registering);
    }
    await Promise.all(waits);
  }

  /** A stream is about to be written to `channel` (counted before the write). */
  joining(channel: ChannelName, streamId: string): void {
    this.#entry(channel).streams.add(streamId);
  }

  /** A stream's entry was removed from `channel` (counted after the write). */
  left(channel: ChannelName, streamId: string): void {
    this.#held.get(channel)?.streams.delete(streamId);
  }

  /** Keeps `channel` registered while work under way may write to it. */
  pin(channel: ChannelName): void {
    this.#entry(channel).pins++;
  }

  unpin(channel: ChannelName): void {
    const held = this.#held.get(channel);
    if (held) held.pins = Math.max(0, held.pins - 1);
  }

  graceStarted(channel: ChannelName, token: string): void {
    this.#entry(channel).graces.add(token);
  }

  graceEnded(channel: ChannelName, token: string): void {
    this.#held.get(channel)?.graces.delete(token);
  }

  /**
   * Registered channels where this pod holds nothing any more: forgotten here at once (a later
   * write registers them again); the caller removes them from the index.
   */
  release(): ChannelName[] {
    const released: ChannelName[] = [];
    for (const channel of this.#registered.keys()) {
      const held = this.#held.get(channel);
      if (held && (held.streams.size > 0 || held.graces.size > 0 || held.pins > 0)) continue;
      this.#held.delete(channel);
      this.#registered.delete(channel);
      this.#stale.delete(channel);
      released.push(channel);
    }
    return released;
  }

  /** Channels in the index, as far as this pod knows. */
  get size(): number {
    return this.#registered.size;
  }

  /**
   * Forgets which channels are registered, keeping what the pod holds: after a disconnect, a
   * Redis that lost its data (restarted empty, or from disk) may not have them, and a join
   * written before the next heartbeat would be in no index — nothing could reap it if the pod
   * then died. The next write to each channel registers it again (one heartbeat call).
   */
  forgetRegistrations(): void {
    // Still walked by release(), so a channel never written again is released as before.
    for (const channel of this.#registered.keys()) this.#stale.add(channel);
  }

  /** Forgets everything (the store lost this pod's entries). */
  clear(): void {
    this.#held.clear();
    this.#registered.clear();
    this.#stale.clear();
  }

  #entry(channel: ChannelName): Held {
    let held = this.#held.get(channel);
    if (!held) {
      held = { streams: new Set(), graces: new Set(), pins: 0 };
      this.#held.set(channel, held);
    }
    return held;
  }
}
