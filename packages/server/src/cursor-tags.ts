/**
 * The cursor tag prefix (`channelTag + epochTag`) of a channel's epoch, computed once per
 * channel and epoch: every event's `id:` starts with it.
 */
import { type ChannelName, channelTag, epochTag } from "@realtime/protocol";

/**
 * Cursor tag prefixes remembered (one per channel and epoch); past it the cache starts over.
 * Hot channels are back in it at their next event; 100,000 held ~15 MB for rooms an attacker
 * named once.
 */
const TAG_CACHE_ENTRIES = 10_000;

export class CursorTags {
  readonly #cache = new Map<string, string>();

  prefix(channel: ChannelName, epoch: string): string {
    const key = `${epoch} ${channel}`;
    let prefix = this.#cache.get(key);
    if (prefix === undefined) {
      if (this.#cache.size >= TAG_CACHE_ENTRIES) this.#cache.clear();
      prefix = channelTag(channel) + epochTag(epoch);
      this.#cache.set(key, prefix);
    }
    return prefix;
  }
}
