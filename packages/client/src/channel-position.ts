/**
 * One channel's position as a cursor states it: which history (epoch tag) and how far (offset).
 * The client reads it from the ids the stream and history pages carry, to hand a channel over
 * from a history page to the stream and to keep each subscription from seeing an event twice.
 */
import { channelTag, cursorEntry, decodeCursor, joinCursor } from "@realtime/protocol";

export interface ChannelPosition {
  readonly epochTag: string;
  readonly offset: number;
}

/** Channel tags by channel name: hashing once per channel, not once per event. */
const tags = new Map<string, string>();
const TAG_CACHE_MAX = 1024;

function tagOf(channel: string): string {
  let tag = tags.get(channel);
  if (tag === undefined) {
    if (tags.size >= TAG_CACHE_MAX) tags.clear();
    tag = channelTag(channel);
    tags.set(channel, tag);
  }
  return tag;
}

/** `channel`'s entry in `cursor`; null when the cursor has none or is not a cursor. */
export function positionIn(
  cursor: string | null | undefined,
  channel: string,
): ChannelPosition | null {
  if (typeof cursor !== "string" || cursor === "") return null;
  return decodeCursor(cursor)?.entries.get(tagOf(channel)) ?? null;
}

/**
 * Whether an event at `position` is one a reader at `seen` has already had: same history and
 * not beyond it. An event of another history (the channel's history was lost and began again)
 * is new whatever its offset.
 */
export function alreadySeen(position: ChannelPosition, seen: ChannelPosition | null): boolean {
  return seen !== null && position.epochTag === seen.epochTag && position.offset <= seen.offset;
}

/** The single-channel cursor of `position`: the id a history page gives that event. */
export function channelCursor(channel: string, position: ChannelPosition): string {
  return joinCursor([cursorEntry(tagOf(channel) + position.epochTag, position.offset)]);
}
