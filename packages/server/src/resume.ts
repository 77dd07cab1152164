/**
 * Where a stream starts on each of its channels, from the client's cursor: continue, replay
 * what it missed from history, or — when that is impossible — reset. Never a partial replay.
 */
import {
  type ChannelName,
  decodeCursor,
  lookupCursor,
  type StreamPosition,
} from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";
import type { HistoryStore } from "./history-store.ts";
import type { ChannelStart } from "./sse-stream.ts";

export interface ResumePlan {
  readonly starts: ChannelStart[];
  /** Per channel, the events to replay before going live (empty when none). */
  readonly replays: BrokerMessage[][];
}

export interface ResumeOptions {
  readonly history: HistoryStore | undefined;
  /** Most events replayed per channel; a client further behind gets a reset. */
  readonly maxReplay: number;
  /** Events read from history per round trip. */
  readonly pageSize: number;
  readonly tagPrefix: (channel: ChannelName, epoch: string) => string;
}

/** Why a replay failed, as the `reset` reason. */
type ReplayResult = BrokerMessage[] | "trimmed" | "epoch_changed";

export async function planResume(
  channels: readonly ChannelName[],
  tops: readonly StreamPosition[],
  cursorText: string | null,
  options: ResumeOptions,
): Promise<ResumePlan> {
  const cursor = cursorText ? decodeCursor(cursorText) : null;
  const starts: ChannelStart[] = [];
  const replays: BrokerMessage[][] = [];
  await Promise.all(
    channels.map(async (channel, i) => {
      const top = tops[i] as StreamPosition;
      const fromNow = {
        epoch: top.epoch,
        offset: top.offset,
        tagPrefix: options.tagPrefix(channel, top.epoch),
      };
      replays[i] = [];
      if (cursorText === null) {
        starts[i] = fromNow;
        return;
      }
      if (cursor === null) {
        starts[i] = { ...fromNow, reset: "unknown_cursor" };
        return;
      }
      const found = lookupCursor(cursor, channel, top.epoch);
      if (found.kind === "absent") {
        starts[i] = fromNow;
      } else if (found.kind === "epoch_changed") {
        starts[i] = { ...fromNow, reset: "epoch_changed" };
      } else if (found.offset > top.offset) {
        starts[i] = { ...fromNow, reset: "unknown_cursor" };
      } else if (found.offset === top.offset) {
        starts[i] = fromNow;
      } else {
        const replay = await readReplay(channel, found.offset, top, options);
        if (Array.isArray(replay)) {
          starts[i] = { ...fromNow, offset: found.offset };
          replays[i] = replay;
        } else {
          starts[i] = { ...fromNow, reset: replay };
        }
      }
    }),
  );
  return { starts, replays };
}

/** Reads (after, top] from history, all of it and contiguous, or says why not. */
async function readReplay(
  channel: ChannelName,
  after: number,
  top: StreamPosition,
  options: ResumeOptions,
): Promise<ReplayResult> {
  const { history, maxReplay, pageSize } = options;
  if (!history || top.offset - after > maxReplay) return "trimmed";
  const out: BrokerMessage[] = [];
  let cursor = after;
  while (cursor < top.offset) {
    const page = await history.read(channel, cursor, Math.min(pageSize, top.offset - cursor));
    if (page.epoch !== top.epoch) return "epoch_changed";
    const first = page.messages[0];
    if (!first || first.offset !== cursor + 1) return "trimmed";
    for (const message of page.messages) {
      if (message.offset !== cursor + 1 || message.epoch !== top.epoch) return "trimmed";
      if (message.offset > top.offset) break;
      out.push(message);
      cursor = message.offset;
    }
  }
  return out;
}
