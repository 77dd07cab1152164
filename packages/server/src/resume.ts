/**
 * Where a stream starts on each of its channels, from the client's cursor: continue, replay
 * what it missed from history, or — when that is impossible — reset. Never a partial replay
 * by choice: a replay is planned only when history still holds its first event (and so,
 * trimmed only from the front, all of it). The events themselves are not read here: the
 * {@link Replayer} streams them a page at a time once the stream is connected.
 */
import {
  type ChannelName,
  decodeCursor,
  lookupCursor,
  ResetReason,
  type StreamPosition,
} from "@realtime/protocol";
import type { HistoryStore } from "./history-store.ts";
import type { ChannelStart } from "./sse-stream.ts";

/** Events (after, until] of a channel's epoch `epoch`, to replay before going live. */
export interface ReplayRange {
  readonly epoch: string;
  readonly after: number;
  readonly until: number;
}

export interface ResumePlan {
  readonly starts: ChannelStart[];
  /** Per channel, what to replay before going live (null when nothing). */
  readonly replays: (ReplayRange | null)[];
}

export interface ResumeOptions {
  readonly history: HistoryStore | undefined;
  /** Most events replayed per channel; a client further behind gets a reset. */
  readonly maxReplay: number;
  readonly tagPrefix: (channel: ChannelName, epoch: string) => string;
}

/** Why a replay cannot be made, as the `reset` reason. */
type ReplayRefusal = typeof ResetReason.Trimmed | typeof ResetReason.EpochChanged;

export async function planResume(
  channels: readonly ChannelName[],
  tops: readonly StreamPosition[],
  cursorText: string | null,
  options: ResumeOptions,
): Promise<ResumePlan> {
  const cursor = cursorText ? decodeCursor(cursorText) : null;
  const starts: ChannelStart[] = [];
  const replays: (ReplayRange | null)[] = [];
  await Promise.all(
    channels.map(async (channel, i) => {
      const top = tops[i] as StreamPosition;
      const fromNow = {
        epoch: top.epoch,
        offset: top.offset,
        tagPrefix: options.tagPrefix(channel, top.epoch),
      };
      replays[i] = null;
      if (cursorText === null) {
        starts[i] = fromNow;
        return;
      }
      if (cursor === null) {
        starts[i] = { ...fromNow, reset: ResetReason.UnknownCursor };
        return;
      }
      const found = lookupCursor(cursor, channel, top.epoch);
      if (found.kind === "absent") {
        starts[i] = fromNow;
      } else if (found.kind === "epoch_changed") {
        starts[i] = { ...fromNow, reset: ResetReason.EpochChanged };
      } else if (found.offset > top.offset) {
        starts[i] = { ...fromNow, reset: ResetReason.UnknownCursor };
      } else if (found.offset === top.offset) {
        starts[i] = fromNow;
      } else {
        const refusal = await checkReplay(channel, found.offset, top, options);
        if (refusal === null) {
          starts[i] = { ...fromNow, offset: found.offset };
          replays[i] = { epoch: top.epoch, after: found.offset, until: top.offset };
        } else {
          starts[i] = { ...fromNow, reset: refusal };
        }
      }
    }),
  );
  return { starts, replays };
}

/**
 * Whether (after, top] can be replayed: not too far behind, and history still holds the first
 * of it in the same epoch (one event read, whatever the length of the replay).
 */
async function checkReplay(
  channel: ChannelName,
  after: number,
  top: StreamPosition,
  options: ResumeOptions,
): Promise<ReplayRefusal | null> {
  const { history, maxReplay } = options;
  if (!history || top.offset - after > maxReplay) return ResetReason.Trimmed;
  const page = await history.read(channel, after, 1);
  if (page.epoch !== top.epoch) return ResetReason.EpochChanged;
  return page.messages[0]?.offset === after + 1 ? null : ResetReason.Trimmed;
}
