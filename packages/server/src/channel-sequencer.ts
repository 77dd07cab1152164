/**
 * Keeps one channel's live messages on a pod contiguous. The broker's live path is at most
 * once (Redis pub/sub drops messages while a connection blinks), so the pod watches offsets:
 * a hole makes it hold later messages back and ask for the missing ones from history; when
 * they come (or cannot), everything is released in order.
 *
 * Pure state, no I/O: the hub performs the fetches this class asks for.
 */
import type { BrokerMessage } from "./broker.ts";
import { ReleasedEvents } from "./released-events.ts";

/**
 * Messages after `after`, up to and including `until`, should be fetched from history — and the
 * one at `after` too, when there is one (this pod's top when it asked): {@link
 * ChannelSequencer.filled} checks it is the event this pod released there. `until` may equal
 * `after`: then only that check is asked for.
 */
export interface FetchRequest {
  readonly after: number;
  readonly until: number;
  /**
   * The life (see {@link BrokerMessage.life}) of the live message that asked for this fetch.
   * Only a history that can speak for that message answers it: one written by that life or by
   * the Redis that took over from it, or one holding that life's entry at `until`. Another — a
   * master that woke after its failover and still answers for the slot for a moment — knows
   * nothing of what the new life wrote; the fetcher asks again (see `HistoryPage.lives`).
   */
  readonly life?: string;
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
  readonly rebase?: {
    readonly epoch: string;
    readonly offset: number;
    /**
     * Set when the proof is an offset this pod released carrying other data now: the channel
     * went back and was published past where it was (the broker must start a new epoch
     * whatever its offset now).
     */
    readonly conflict?: boolean;
  };
}

const NOTHING: SequencerOutput = { ready: [] };

/** How many epochs a channel left are remembered (their late messages are dropped). */
const RETIRED = 8;

export class ChannelSequencer {
  #epoch: string | null = null;
  /** Last offset released; -1 until the first message or position is known. */
  #top = -1;
  /** Messages held back while a fetch is under way, ascending by offset. */
  #held: BrokerMessage[] = [];
  #fetching = false;
  /** Live messages are held while the channel is checked after a reconnect ({@link pause}). */
  #paused = false;
  /** Bumped when an epoch change abandons a fetch under way; see {@link filled}. */
  #generation = 0;
  /** Fingerprints and lives of what was released in this epoch (another history tells). */
  readonly #released = new ReleasedEvents();
  /**
   * Epochs this channel left, newest last. Epochs only move forward, but news of one can come
   * late — a frozen pod wakes to the old epoch's messages still in its socket, a position read
   * answers after a live message moved on — and must never take the channel (or a stream)
   * back to an epoch it left.
   */
  #retired: string[] | null = null;

  get top(): number {
    return this.#top;
  }

  get epoch(): string | null {
    return this.#epoch;
  }

  get fetching(): boolean {
    return this.#fetching;
  }

  /** Live messages held back (behind a hole being fetched, or while paused). */
  get held(): number {
    return this.#held.length;
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
  start(epoch: string, offset: number, askedEpoch: string | null = this.#epoch): SequencerOutput {
    if (this.#top < 0) {
      this.#epoch = epoch;
      this.#top = offset;
      return NOTHING;
    }
    // Another epoch, read while this one stayed current (`askedEpoch`: the epoch when the read
    // was sent): the broker moved on and this pod has not heard it on the live path yet (its
    // subscriber connection was away: a frozen pod, a partition). Follow it now, so what is
    // still on its way from the old epoch never reaches a stream that joined in the new one.
    if (epoch === this.#epoch || askedEpoch !== this.#epoch || this.isRetired(epoch)) {
      return NOTHING;
    }
    this.#enter(epoch);
    if (offset <= 0) return NOTHING;
    this.#fetching = true;
    return { ready: [], fetch: { after: 0, until: offset } };
  }

  /** Whether this channel left `epoch` (a message or position of it is stale). */
  isRetired(epoch: string): boolean {
    return this.#retired?.includes(epoch) ?? false;
  }

  /** Moves to `epoch` from offset 0, leaving the current one for good. */
  #enter(epoch: string): void {
    if (this.#epoch !== null && this.#epoch !== epoch) {
      this.#retired ??= [];
      this.#retired.push(this.#epoch);
      if (this.#retired.length > RETIRED) this.#retired.shift();
    }
    this.#epoch = epoch;
    this.#top = 0;
    this.#held = [];
    this.#fetching = false;
    // A fetch still under way for the old epoch must not release what is held now.
    this.#generation++;
    this.#released.forget();
  }

  /** A live message arrived from the broker. */
  receive(message: BrokerMessage): SequencerOutput {
    if (this.#top < 0) {
      // First message: nothing to compare with.
      this.#epoch = message.epoch;
      this.#top = message.offset;
      this.#released.note(message);
      return { ready: [message] };
    }
    if (message.epoch !== this.#epoch) {
      // A late message of an epoch this channel left (see #retired): stale.
      if (this.isRetired(message.epoch)) return NOTHING;
      // The channel's history was lost and restarted (e.g. Redis restarted empty). Streams
      // notice the epoch change themselves and send a reset; but the new epoch's history is
      // complete from offset 1, so what was published in it before this pod heard of it (the
      // pod's subscriber reconnects later than publishers do) is fetched like any other hole,
      // instead of being skipped silently after the reset. Found by the "Redis restarted
      // empty" integration test (e2e/pods/recovery.int.test.ts).
      this.#enter(message.epoch);
    }
    if (message.offset <= this.#top) {
      // A repeat (a backfill overlapping the live path) carries the same data. Other data at
      // an offset this pod released: the broker went back and was published past where it
      // was, and its next offsets all repeat delivered ones — a new epoch, whatever its top.
      if (this.differsAt(message.offset, message.data, message.life)) {
        return { ready: [], rebase: { epoch: message.epoch, offset: this.#top, conflict: true } };
      }
      return NOTHING;
    }
    if (this.#fetching || this.#paused) {
      this.#hold(message);
      return NOTHING;
    }
    if (this.#released.changesLife(message)) {
      // Another Redis wrote this: a promoted replica going on from where this pod is — or a
      // history that forked from it (a master that woke after its failover wrote offsets the
      // replica gave to other events, and this pod released those). Only the broker's history
      // can tell: fetch it from this pod's top up to this message ({@link filled} compares the
      // top, and this message with what history holds at its offset).
      this.#hold(message);
      this.#fetching = true;
      return { ready: [], fetch: this.#fetchUpTo(message, message.offset) };
    }
    if (message.offset === this.#top + 1) {
      const ready: BrokerMessage[] = [];
      this.#release(message, ready);
      return { ready };
    }
    this.#hold(message);
    this.#fetching = true;
    return { ready: [], fetch: this.#fetchUpTo(message, message.offset - 1) };
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
    if (this.isRetired(epoch)) {
      // Asked while still in the epoch it is in now (which it entered after leaving this one):
      // the broker really went back to an epoch it had left (a Redis restored from an old
      // snapshot that no other check caught). Staying deaf to it would stall the channel for
      // good: move the broker on to a fresh epoch instead, which every pod then follows.
      if (asked.epoch === this.#epoch) {
        return { ready: [], rebase: { epoch, offset, conflict: true } };
      }
      return NOTHING; // answered after the channel moved on
    }
    if (this.#top < 0 || epoch !== this.#epoch) this.#enter(epoch);
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
    // The hub reads from the offset it asked after (this pod's top then): history holding
    // another event there than the one this pod released is another history.
    for (const message of messages) {
      if (
        message.epoch === this.#epoch &&
        message.offset <= this.#top &&
        this.differsAt(message.offset, message.data, message.life)
      ) {
        this.#fetching = false;
        return { ready: [], rebase: { epoch: this.#epoch, offset: this.#top, conflict: true } };
      }
    }
    const before = this.#top;
    const ready: BrokerMessage[] = [];
    for (const message of messages) {
      if (message.epoch === this.#epoch && message.offset === this.#top + 1) {
        this.#release(message, ready);
      }
    }
    const step = this.#releaseHeld(ready, true);
    if (step !== null) return step(ready);
    const next = this.#held[0];
    if (next && this.#top > before) {
      // Progress, but another hole opened behind the fetched range: fetch again.
      return { ready, fetch: this.#fetchUpTo(next, next.offset - 1) };
    }
    // No hole left, or history cannot fill it: release the rest as it is (a hole becomes a
    // reset in the streams; a change of life cannot be checked either).
    const last = this.#releaseHeld(ready, false);
    if (last !== null) return last(ready);
    this.#fetching = false;
    return { ready };
  }

  /**
   * The fetch got no answer from a history that can speak for the live message that asked for
   * it (the hub asked again for a while; see `speaksFor`): what it read may be another
   * history's, so it is not used. A new life at the top stays unchecked — this pod may have
   * released another history's events — so the channel moves to a new epoch (a conflict rebase:
   * one `reset`, never a silent loss); a hole is released as a hole (a reset in the streams).
   */
  unverified(generation = this.#generation): SequencerOutput {
    if (generation !== this.#generation) return NOTHING;
    const next = this.#held[0];
    const topLife = this.#released.topLife;
    if (
      this.#epoch !== null &&
      next?.offset === this.#top + 1 &&
      next.life !== undefined &&
      topLife !== undefined &&
      next.life !== topLife
    ) {
      this.#fetching = false;
      return { ready: [], rebase: { epoch: this.#epoch, offset: this.#top, conflict: true } };
    }
    return this.filled([], generation);
  }

  /**
   * Holds live messages back until {@link resume}: while the hub checks, after the live path
   * came back, that the broker did not go back and get published past where it was (what is
   * live now could belong to offsets it reused).
   */
  pause(): void {
    this.#paused = true;
  }

  /**
   * Ends a {@link pause}: releases what was held and follows on, in order, and asks for the
   * hole before the rest (never releases past a hole unfetched).
   */
  resume(): SequencerOutput {
    this.#paused = false;
    if (this.#fetching || this.#held.length === 0) return NOTHING;
    const ready: BrokerMessage[] = [];
    const step = this.#releaseHeld(ready, true);
    if (step !== null) return step(ready);
    const next = this.#held[0];
    if (!next) return { ready };
    this.#fetching = true;
    return { ready, fetch: this.#fetchUpTo(next, next.offset - 1) };
  }

  /**
   * Whether this pod released another event at `offset` of the current epoch: one written by
   * another life, or with other data (false when it does not remember that offset: data only
   * for the last few, lives since the oldest remembered change; nor about one not released yet).
   */
  differsAt(offset: number, data: string, life?: string): boolean {
    if (offset > this.#top) return false; // not released yet
    return this.#released.differsAt(offset, data, life);
  }

  /** The fetch from this pod's top up to `until`, asked for by the live `message`. */
  #fetchUpTo(message: BrokerMessage, until: number): FetchRequest {
    const after = this.#top;
    return message.life === undefined ? { after, until } : { after, until, life: message.life };
  }

  #release(message: BrokerMessage, ready: BrokerMessage[]): void {
    ready.push(message);
    this.#top = message.offset;
    this.#released.note(message);
  }

  /**
   * Releases held messages in order into `ready`: while they are contiguous (`inOrder`), or
   * all of them, past holes. A held message at an offset released meanwhile (from history)
   * must be that event, or the two are of different histories: a conflict. With `inOrder`, a
   * held message of another life than the top waits for history to be checked there. Returns
   * null, or what to answer with `ready` instead of going on.
   */
  #releaseHeld(
    ready: BrokerMessage[],
    inOrder: boolean,
  ): ((ready: BrokerMessage[]) => SequencerOutput) | null {
    let i = 0;
    for (; i < this.#held.length; i++) {
      const message = this.#held[i] as BrokerMessage;
      if (message.offset <= this.#top) {
        if (!this.differsAt(message.offset, message.data, message.life)) continue;
        this.#held = this.#held.slice(i);
        this.#fetching = false;
        const rebase = { epoch: message.epoch, offset: this.#top, conflict: true };
        return (ready) => ({ ready, rebase });
      }
      if (inOrder) {
        if (message.offset !== this.#top + 1) break;
        if (this.#released.changesLife(message)) {
          this.#held = this.#held.slice(i);
          this.#fetching = true;
          const fetch = this.#fetchUpTo(message, message.offset);
          return (ready) => ({ ready, fetch });
        }
      }
      this.#release(message, ready);
    }
    this.#held = this.#held.slice(i);
    return null;
  }

  #hold(message: BrokerMessage): void {
    const held = this.#held;
    let i = held.length;
    while (i > 0 && (held[i - 1] as BrokerMessage).offset > message.offset) i--;
    if (held[i - 1]?.offset === message.offset) return;
    held.splice(i, 0, message);
  }
}
