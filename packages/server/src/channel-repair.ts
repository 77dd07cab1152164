/**
 * Channel repair: drives each local channel's {@link ChannelSequencer} and performs the I/O it
 * asks for — backfilling a hole from history, moving a channel that went back to a new epoch
 * (`Broker.rebase`), and the periodic and after-reconnect position checks that find a lost
 * last message or a broker that went back. What the sequencer releases goes to `deliver`.
 */
import type { StreamPosition } from "@realtime/protocol";
import type { Broker, BrokerMessage } from "./broker.ts";
import type { FetchRequest, SequencerOutput } from "./channel-sequencer.ts";
import { readRange, STRANGER_HISTORY_MS, speaksFor } from "./history-range.ts";
import type { HistoryStore } from "./history-store.ts";
import type { LocalChannel, LocalChannels } from "./local-channels.ts";
import type { Metrics } from "./metrics.ts";

/**
 * A backfill whose history reads fail (Redis away, frozen, or its connection being replaced)
 * retries them for as long as they fail: the events are still in history, and the live path is
 * most likely down as well, so waiting costs the streams nothing they could have had — a
 * time bound turned a Redis frozen for 17 s into a `reset` with nothing lost (`npm run chaos`,
 * seed 5034). Only when this many live messages pile up behind the hole (the live path works,
 * history does not) is the hole given up on and released as a reset: as many as a channel's
 * history keeps by default, so what is held stays bounded.
 */
const BACKFILL_MAX_HELD = 10_000;

export interface ChannelRepairOptions {
  readonly broker: Broker;
  readonly history: HistoryStore | undefined;
  readonly metrics: Metrics;
  readonly channels: LocalChannels;
  /** Delivers a message the sequencer released to the channel's streams. */
  readonly deliver: (state: LocalChannel, message: BrokerMessage) => void;
  /** See {@link STRANGER_HISTORY_MS} (the default). */
  readonly strangerHistoryMs?: number;
}

export class ChannelRepair {
  readonly #broker: Broker;
  readonly #history: HistoryStore | undefined;
  readonly #metrics: Metrics;
  readonly #channels: LocalChannels;
  readonly #deliver: (state: LocalChannel, message: BrokerMessage) => void;
  readonly #strangerHistoryMs: number;

  constructor(options: ChannelRepairOptions) {
    this.#broker = options.broker;
    this.#history = options.history;
    this.#metrics = options.metrics;
    this.#channels = options.channels;
    this.#deliver = options.deliver;
    this.#strangerHistoryMs = options.strangerHistoryMs ?? STRANGER_HISTORY_MS;
  }

  /** A live message from the broker. */
  receive(message: BrokerMessage): void {
    const state = this.#channels.get(message.channel);
    if (state) this.apply(state, state.sequencer.receive(message));
  }

  /** Delivers what the sequencer released and starts the fetch it asked for. */
  apply(state: LocalChannel, output: SequencerOutput): void {
    for (const message of output.ready) this.#deliver(state, message);
    if (output.rebase) {
      const { epoch, offset, conflict } = output.rebase;
      void this.#rebase(state, { epoch, offset }, { conflict: conflict === true });
    }
    if (output.fetch) {
      // The generation lets the sequencer ignore a fetch an epoch change made stale.
      void this.#backfill(state, output.fetch, state.sequencer.generation);
    }
  }

  /**
   * Compares every local channel's last delivered position with the broker's and backfills
   * what is missing. Runs on a timer and after the broker reconnects.
   */
  async checkPositions(options: { readonly verifyContent?: boolean } = {}): Promise<void> {
    const verify = options.verifyContent === true && this.#history !== undefined;
    const states = this.#channels
      .all()
      .filter((s) => s.sequencer.top >= 0 && !s.sequencer.fetching);
    // After a reconnect, live messages wait until the channel is checked: they may belong to
    // offsets a Redis that went back has reused.
    if (verify) for (const state of states) state.sequencer.pause();
    await Promise.all(
      states.map(async (state) => {
        try {
          const asked = { epoch: state.sequencer.epoch, top: state.sequencer.top };
          const top = await this.#broker.position(state.name);
          if (!this.#channels.holds(state)) return;
          if (verify && (await this.#wentBackAndPast(state, top, asked))) {
            await this.#rebase(state, { epoch: top.epoch, offset: asked.top }, { conflict: true });
            return;
          }
          this.apply(state, state.sequencer.observe(top.epoch, top.offset, asked));
        } catch {
          // The broker is away; the next check or reconnect tries again.
        } finally {
          if (verify && this.#channels.holds(state)) {
            this.apply(state, state.sequencer.resume());
          }
        }
      }),
    );
  }

  /**
   * After the broker's live path came back (a Redis restart among the causes): whether the
   * event history now holds at this pod's top offset is another than the one the pod released
   * there. A Redis restored from an older snapshot and then published past where it was shows
   * no gap and no offset below the pod's: only the data tells (found by `npm run chaos`).
   */
  async #wentBackAndPast(
    state: LocalChannel,
    top: StreamPosition,
    asked: { readonly epoch: string | null; readonly top: number },
  ): Promise<boolean> {
    if (!this.#history || asked.top < 1 || top.epoch !== asked.epoch || top.offset < asked.top) {
      return false;
    }
    const page = await this.#history.read(state.name, asked.top - 1, 1);
    const there = page.messages[0];
    return (
      page.epoch === top.epoch &&
      there?.offset === asked.top &&
      state.sequencer.epoch === asked.epoch &&
      state.sequencer.differsAt(there.offset, there.data, there.life)
    );
  }

  /**
   * The broker lost a tail of the channel that this pod had delivered: it moves the channel to
   * a new epoch (unless another pod did), and the sequencer follows; streams then reset the
   * channel on its next event, as for any lost history.
   */
  async #rebase(
    state: LocalChannel,
    seen: StreamPosition,
    options?: { readonly conflict?: boolean },
  ): Promise<void> {
    if (!this.#broker.rebase || state.rebasing) return;
    state.rebasing = true;
    try {
      const asked = { epoch: state.sequencer.epoch, top: state.sequencer.top };
      const top = await this.#broker.rebase(state.name, seen, options);
      // Counted only when the channel really left the epoch (the script declines when the
      // channel is not below `seen` after all).
      if (top.epoch !== seen.epoch) this.#metrics.brokerWentBack?.();
      if (this.#channels.holds(state)) {
        this.apply(state, state.sequencer.observe(top.epoch, top.offset, asked));
      }
    } catch {
      // The broker is away; the next check sees the same regression and tries again.
    } finally {
      state.rebasing = false;
    }
  }

  /**
   * Reads [after, until] of a channel from history for its sequencer: the entry at `after` (the
   * sequencer's top when it asked) is the one it checks it released; the rest fills the hole.
   */
  async #backfill(state: LocalChannel, fetch: FetchRequest, generation: number): Promise<void> {
    const history = this.#history;
    let found: BrokerMessage[] = [];
    let verified = true;
    const current = () => this.#channels.holds(state) && state.sequencer.generation === generation;
    if (history) {
      let strangerSince: number | undefined;
      for (let pause = 50; ; pause = Math.min(pause * 2, 1_000)) {
        try {
          const read = await readRange(history, state.name, fetch);
          verified = speaksFor(read, fetch);
          found = verified ? read.messages : [];
          if (verified) break;
          // A history that cannot speak for the live message that asked: most likely a master
          // that woke after its failover, answering reads it had buffered with its own fork
          // before it hears of the promotion (Cluster seed 9022: it "confirmed" the woken
          // master's event this pod released, the promoted replica's event at that offset
          // was never delivered, and no reset). Asked again, the slot's owner answers.
          strangerSince ??= performance.now();
          if (performance.now() - strangerSince >= this.#strangerHistoryMs || !current()) break;
        } catch {
          found = [];
          // A failed read says nothing about history: the connection may be being replaced
          // (a partition, a restart). Streams wait (the sequencer holds what came after the
          // hole) and the read is tried again (see BACKFILL_MAX_HELD). Found by `npm run chaos`
          // (a black-holed link: `gap` resets though history held everything).
          if (!current() || state.sequencer.held >= BACKFILL_MAX_HELD) break;
        }
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
    if (this.#channels.holds(state)) {
      const sequencer = state.sequencer;
      this.apply(
        state,
        verified ? sequencer.filled(found, generation) : sequencer.unverified(generation),
      );
    }
  }
}
