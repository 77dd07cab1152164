/**
 * Keeps one channel's live messages on a pod contiguous. The broker's live path is at most
 * once (Redis pub/sub drops messages while a connection blinks), so the pod watches offsets:
 * a hole makes it hold later messages back and ask for the missing ones from history; when
 * they come (or cannot), everything is released in order.
 *
 * Pure state, no I/O: the hub performs the fetches this class asks for.
 */
import type { BrokerMessage } from "./broker.ts";

/** Messages after `after`, up to and including `until`, should be fetched from history. */
export interface FetchRequest {
  readonly after: number;
  readonly until: number;
}

export interface SequencerOutput {
  /** Deliver these to the channel's streams, in this order. */
  readonly ready: BrokerMessage[];
  /** Fetch this range from history, then call {@link ChannelSequencer.filled}. */
  readonly fetch?: FetchRequest;
  /**
   * The broker is below what this pod released, in the same epoch: it lost a tail. Ask it to
   * start a new epoch (`Broker.rebase`) with this position, then {@link ChannelSequencer.observe}
   * what it answers.
   */
  readonly rebase?: { readonly epoch: string; readonly offset: number };
}

const NOTHING: SequencerOutput = { ready: [] };

export class ChannelSequencer {
  #epoch: string | null = null;
  /** Last offset released; -1 until the first message or position is known. */
  #top = -1;
  /** Messages held back while a fetch is under way, ascending by offset. */
  #held: BrokerMessage[] = [];
  #fetching = false;
  /** Bumped when an epoch change abandons a fetch under way; see {@link filled}. */
  #generation = 0;

  get top(): number {
    return this.#top;
  }

  get epoch(): string | null {
    return this.#epoch;
  }

  get fetching(): boolean {
    return this.#fetching;
  }

  /** Pass this (read when a fetch is asked for) back to {@link filled}. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * The channel's position as read when a stream joined (nothing before it is owed). Only the
   * first one counts: later ones race with messages still in flight on the live path, and
   * comparing them would fetch history on every join of a busy channel; lost tails are found
   * by {@link observe} on the periodic check instead.
   */
  start(epoch: string, offset: number): SequencerOutput {
    if (this.#top < 0) {
      this.#epoch = epoch;
      this.#top = offset;
    }
    return NOTHING;
  }

  /** A live message arrived from the broker. */
  receive(message: BrokerMessage): SequencerOutput {
    if (this.#top < 0) {
      // First message: nothing to compare with.
      this.#epoch = message.epoch;
      this.#top = message.offset;
      return { ready: [message] };
    }
    if (message.epoch !== this.#epoch) {
      // The channel's history was lost and restarted (e.g. Redis restarted empty). Streams
      // notice the epoch change themselves and send a reset; but the new epoch's history is
      // complete from offset 1, so what was published in it before this pod heard of it (the
      // pod's subscriber reconnects later than publishers do) is fetched like any other hole,
      // instead of being skipped silently after the reset. Found by the "Redis restarted
      // empty" integration test (apps/service/src/recovery.int.test.ts).
      this.#epoch = message.epoch;
      this.#top = 0;
      this.#held = [];
      this.#fetching = false;
      // A fetch still under way for the old epoch must not release what is held now.
      this.#generation++;
    }
    if (message.offset <= this.#top) return NOTHING;
    if (this.#fetching) {
      this.#hold(message);
      return NOTHING;
    }
    if (message.offset === this.#top + 1) {
      this.#top = message.offset;
      return { ready: [message] };
    }
    this.#hold(message);
    this.#fetching = true;
    return { ready: [], fetch: { after: this.#top, until: message.offset - 1 } };
  }

  /**
   * The channel's top as the broker reports it (after a reconnect, or on the periodic check).
   * If the pod is behind, the missing tail is fetched: this catches a lost *last* message,
   * which no later message would reveal. If the broker is behind what the pod had released
   * when it asked (`asked`: {@link epoch} and {@link top} read before the request; default now),
   * in the same epoch, it lost a tail: the output asks for a rebase.
   */
  observe(
    epoch: string,
    offset: number,
    asked: { readonly epoch: string | null; readonly top: number } = this,
  ): SequencerOutput {
    if (this.#fetching) return NOTHING;
    // Compared with what this pod had released when it *asked*: live messages that arrived
    // while the answer was on its way make the answer look behind without anything being lost.
    if (asked.top >= 0 && epoch === asked.epoch && epoch === this.#epoch && offset < asked.top) {
      // Offsets only grow within an epoch: the broker lost what it had acknowledged. Its next
      // offsets would repeat ones this pod released (and drop as duplicates).
      return { ready: [], rebase: { epoch, offset: asked.top } };
    }
    if (this.#top < 0 || epoch !== this.#epoch) {
      this.#epoch = epoch;
      this.#top = 0;
      this.#held = [];
    }
    if (offset <= this.#top) return NOTHING;
    this.#fetching = true;
    return { ready: [], fetch: { after: this.#top, until: offset } };
  }

  /**
   * A fetch finished with `messages` (whatever history still had; possibly none). Releases the
   * filled range and what was held back. A hole history could not fill is released as a hole:
   * the streams turn it into an explicit reset rather than waiting forever.
   *
   * `generation` is {@link generation} as it was when the fetch was asked for: the result of
   * a fetch that an epoch change abandoned is ignored (it would release the new epoch's held
   * messages past a hole that the new epoch's own fetch is about to fill).
   */
  filled(messages: readonly BrokerMessage[], generation = this.#generation): SequencerOutput {
    if (generation !== this.#generation) return NOTHING;
    const before = this.#top;
    const ready: BrokerMessage[] = [];
    for (const message of messages) {
      if (message.epoch === this.#epoch && message.offset === this.#top + 1) {
        ready.push(message);
        this.#top = message.offset;
      }
    }
    this.#releaseContiguous(ready);
    const next = this.#held[0];
    if (next && this.#top > before) {
      // Progress, but another hole opened behind the fetched range: fetch again.
      return { ready, fetch: { after: this.#top, until: next.offset - 1 } };
    }
    // No hole left, or history cannot fill it: release the rest as it is.
    for (const message of this.#held) {
      ready.push(message);
      this.#top = message.offset;
    }
    this.#held = [];
    this.#fetching = false;
    return { ready };
  }

  #releaseContiguous(ready: BrokerMessage[]): void {
    let i = 0;
    for (; i < this.#held.length; i++) {
      const message = this.#held[i] as BrokerMessage;
      if (message.offset <= this.#top) continue;
      if (message.offset !== this.#top + 1) break;
      ready.push(message);
      this.#top = message.offset;
    }
    this.#held = this.#held.slice(i);
  }

  #hold(message: BrokerMessage): void {
    const held = this.#held;
    let i = held.length;
    while (i > 0 && (held[i - 1] as BrokerMessage).offset > message.offset) i--;
    if (held[i - 1]?.offset === message.offset) return;
    held.splice(i, 0, message);
  }
}
