/**
 * Sends a resuming stream what it missed, a page of history at a time: a page is read only
 * once the peer drained the one before, so a replay holds at most one page in memory however
 * far behind the client is and however slowly it reads, and at most `maxConcurrent` replays
 * (`maxPerUser` of one user) run on a pod at once ({@link ReplaySlots}). The rest wait their
 * turn with the stream open, their live messages buffered as during any replay.
 *
 * Memory a pod spends on replays is so bounded by
 * `maxConcurrent × (pageSize × the largest event + the replay high-water mark)`.
 */

import type { ChannelName } from "@realtime/protocol";
import { ResetReason } from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";
import type { HistoryStore } from "./history-store.ts";
import { ReplaySlots } from "./replay-slots.ts";
import type { ReplayRange } from "./resume.ts";
import type { SseStream } from "./sse-stream.ts";

export interface ReplayerOptions {
  readonly history: HistoryStore | undefined;
  /** Events read from history per round trip. */
  readonly pageSize: number;
  /** Replays at once on this pod. */
  readonly maxConcurrent: number;
  /** Replays at once of one user. */
  readonly maxPerUser: number;
  /** The replay cannot go on because history could not be read: close for a resume. */
  readonly failed: (stream: SseStream) => void;
}

export class Replayer {
  readonly #history: HistoryStore | undefined;
  readonly #pageSize: number;
  readonly #slots: ReplaySlots;
  readonly #failed: (stream: SseStream) => void;

  constructor(options: ReplayerOptions) {
    this.#history = options.history;
    this.#pageSize = Math.max(1, options.pageSize);
    this.#slots = new ReplaySlots(options.maxConcurrent, options.maxPerUser);
    this.#failed = options.failed;
  }

  /** Replays holding a slot now. */
  get running(): number {
    return this.#slots.running;
  }

  /** Replays waiting for a slot now. */
  get waiting(): number {
    return this.#slots.waiting;
  }

  /**
   * Replays every planned range of `stream` (connected, not yet live), in channel order.
   * Resolves when done, or as soon as the stream is gone.
   */
  async run(stream: SseStream, replays: readonly (ReplayRange | null)[]): Promise<void> {
    const history = this.#history;
    if (!history || replays.every((r) => r === null)) return;
    const ticket = this.#slots.acquire(stream.userId);
    // A stream that ends while it waits gives its place up at once (and one that ends while
    // it replays is woken from its wait for a drain, and gives its slot back below).
    stream.onEnd(() => ticket.release());
    try {
      if (!(await ticket.granted)) return;
      for (let i = 0; i < replays.length; i++) {
        const range = replays[i];
        if (!range) continue;
        if (!(await this.#replayChannel(history, stream, i, range))) return;
      }
    } finally {
      ticket.release();
    }
  }

  /** Replays one channel; false when the stream is gone or was closed for a resume. */
  async #replayChannel(
    history: HistoryStore,
    stream: SseStream,
    index: number,
    range: ReplayRange,
  ): Promise<boolean> {
    const channel = stream.channels[index] as ChannelName;
    let cursor = range.after;
    while (cursor < range.until) {
      if (stream.gone) return false;
      let page: Awaited<ReturnType<HistoryStore["read"]>>;
      try {
        page = await history.read(channel, cursor, Math.min(this.#pageSize, range.until - cursor));
      } catch {
        // Nothing is lost: the client resumes from what it got, on this pod or another.
        this.#failed(stream);
        return false;
      }
      if (stream.gone) return false;
      if (page.epoch !== range.epoch) {
        // The channel's history was lost while replaying: its new epoch goes live from 1.
        stream.abandonReplay(index, ResetReason.EpochChanged, page.epoch, 0);
        return true;
      }
      const first = page.messages[0];
      if (first?.offset !== cursor + 1) {
        // History lost the rest meanwhile (a busy channel trimmed past it, or its age ran out).
        stream.abandonReplay(index, ResetReason.Trimmed, range.epoch, range.until);
        return true;
      }
      for (const message of page.messages as BrokerMessage[]) {
        if (message.offset !== cursor + 1 || message.offset > range.until) break;
        stream.replay(index, message);
        cursor = message.offset;
        // In one write up to the replay's high-water mark, not the whole page at once: a page
        // of large events could pass the slow-client bound of a peer that reads.
        if (stream.backedUp) {
          stream.flushReplay();
          if (stream.backedUp) await stream.drained();
        }
        if (stream.gone) return false;
      }
      stream.flushReplay();
    }
    return true;
  }
}
