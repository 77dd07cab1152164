/**
 * What a pod's backfill reads from history for its channel sequencer, and whether that
 * history can speak for the live message that asked for it.
 */
import type { ChannelName } from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";
import type { FetchRequest } from "./channel-sequencer.ts";
import type { HistoryStore } from "./history-store.ts";

/** Events read from history per round trip when a pod backfills a hole. */
const HISTORY_PAGE = 1_000;

/**
 * How long a backfill asks again while history answers from a Redis that cannot speak for the
 * live message that asked (see {@link speaksFor}); then it gives up on that answer (the
 * sequencer's `unverified`: a reset, never a repair from another history). A woken master
 * hears of its failover within a second or two.
 */
export const STRANGER_HISTORY_MS = 10_000;

/** What {@link readRange} read, and which lives (`HistoryPage.lives`) answered. */
export interface RangeRead {
  readonly messages: BrokerMessage[];
  /** The lives of the history that answered the first page. */
  readonly lives: readonly string[] | undefined;
  /** Pages answered by different Redis servers (a failover between them). */
  readonly mixed: boolean;
}

/**
 * [after, until] of a channel's history, in pages, from the entry at `after` (the sequencer's
 * top: it checks that entry is the one it released). Stops early where history ends.
 */
export async function readRange(
  history: HistoryStore,
  channel: ChannelName,
  { after, until }: FetchRequest,
): Promise<RangeRead> {
  const messages: BrokerMessage[] = [];
  let lives: readonly string[] | undefined;
  let mixed = false;
  let cursor = Math.max(0, after - 1);
  for (let first = true; cursor < until; first = false) {
    const page = await history.read(channel, cursor, Math.min(HISTORY_PAGE, until - cursor));
    if (first) lives = page.lives;
    else if (page.lives?.[0] !== lives?.[0]) mixed = true;
    const usable = page.messages.filter((m) => m.offset > cursor && m.offset <= until);
    if (usable.length === 0) break;
    messages.push(...usable);
    cursor = (usable.at(-1) as BrokerMessage).offset;
  }
  return { messages, lives, mixed };
}

/**
 * Whether what was read can speak for the live message that asked for the fetch (of
 * `fetch.life`): one history, written by that life or by the Redis that took over from it, or
 * holding that life's entry at `until`. A store without lives, or a fetch no message asked
 * for, always can.
 */
export function speaksFor(read: RangeRead, fetch: FetchRequest): boolean {
  const { life, until } = fetch;
  if (life === undefined) return true;
  if (read.mixed) return false;
  if (read.lives === undefined || read.lives.includes(life)) return true;
  return read.messages.some((m) => m.offset === until && m.life === life);
}
