/**
 * What a pod remembers of the events it released in a channel's current epoch, to tell
 * another history from its own: a fingerprint of each of the last few offsets' data, and which
 * life (see {@link BrokerMessage.life}) wrote each stretch. Pure state, kept by the
 * `ChannelSequencer`; forgotten when the channel enters a new epoch.
 */
import { fnv1a } from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";

/** How many of the last released offsets keep a fingerprint of their data. */
const FINGERPRINTS = 32;

/** How many changes of life (see {@link BrokerMessage.life}) an epoch remembers. */
const LIVES = 8;

/** From `from` on, this epoch's released messages were written by `life`. */
interface LifeSpan {
  readonly from: number;
  readonly life: string;
}

/** A short fingerprint of a message's data (what tells two events at one offset apart). */
export function fingerprintOf(data: string): number {
  return fnv1a(data);
}

export class ReleasedEvents {
  /**
   * Fingerprints of the last released offsets of this epoch (`offset % FINGERPRINTS`), created
   * on the first release. A live message at one of them with other data proves the broker went
   * back and was published past where it was — a lost tail no offset comparison can see.
   */
  #offsets: Float64Array | null = null;
  #prints: Uint32Array | null = null;
  /**
   * Which life wrote the released offsets of this epoch, as spans ascending by `from` (the last
   * {@link LIVES}): unlike the fingerprints, this tells two histories apart at any offset since
   * the oldest span began — a burst of a frozen master's late writes outruns any window.
   */
  #lives: LifeSpan[] | null = null;
  /** The offset of the last message of a new life checked against history (see {@link changesLife}). */
  #checked = -1;

  /**
   * Whether another event than this one was released at `offset` (an offset already
   * released): one written by another life, or with other data (false when it does not
   * remember that offset: data only for the last few, lives since the oldest remembered change).
   */
  differsAt(offset: number, data: string, life?: string): boolean {
    if (life !== undefined && this.#lives !== null) {
      for (let i = this.#lives.length - 1; i >= 0; i--) {
        const span = this.#lives[i] as LifeSpan;
        if (span.from > offset) continue;
        if (span.life !== life) return true;
        break;
      }
    }
    const slot = offset % FINGERPRINTS;
    if (this.#offsets === null || this.#prints === null || this.#offsets[slot] !== offset) {
      return false;
    }
    return this.#prints[slot] !== fingerprintOf(data);
  }

  /** The life that wrote the last released message, if messages carry lives. */
  get topLife(): string | undefined {
    return this.#lives?.at(-1)?.life;
  }

  /**
   * Whether `message`, the next past the top, was written by another life than the top — and
   * has not been checked against history yet (it is asked for once: history that does not
   * reach its offset cannot tell, and it is released then).
   */
  changesLife(message: BrokerMessage): boolean {
    const current = this.#lives?.at(-1)?.life;
    if (current === undefined || message.life === undefined || message.life === current) {
      return false;
    }
    if (this.#checked === message.offset) return false;
    this.#checked = message.offset;
    return true;
  }

  /** `message` was released. */
  note(message: BrokerMessage): void {
    if (this.#offsets === null || this.#prints === null) {
      this.#offsets = new Float64Array(FINGERPRINTS).fill(-1);
      this.#prints = new Uint32Array(FINGERPRINTS);
    }
    const slot = message.offset % FINGERPRINTS;
    this.#offsets[slot] = message.offset;
    this.#prints[slot] = fingerprintOf(message.data);
    const life = message.life;
    if (life === undefined || this.#lives?.at(-1)?.life === life) return;
    this.#lives ??= [];
    this.#lives.push({ from: message.offset, life });
    if (this.#lives.length > LIVES) this.#lives.shift();
  }

  /** A new epoch: what was released in the old one says nothing about its offsets. */
  forget(): void {
    this.#offsets = null;
    this.#prints = null;
    this.#lives = null;
    this.#checked = -1;
  }
}
