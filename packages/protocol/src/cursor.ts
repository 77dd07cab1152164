/**
 * Stream cursors: the SSE `id:` of every event encodes the position of **every** channel on
 * that stream, so a plain `EventSource` that reconnects with `Last-Event-ID` resumes all of
 * its channels, on any pod.
 *
 * Format (version 1): `1` then one entry per channel, each preceded by `.`:
 *
 *     1.<channel tag:4><epoch tag:4><offset base36>
 *
 * - channel tag: 4 base-62 digits of a hash of the channel name. Entries are found by tag, so
 *   a stream may add or drop channels and still resume the ones it keeps.
 * - epoch tag: 4 base-62 digits of a hash of the channel's history epoch. When the history is
 *   lost (Redis restarted empty), the epoch changes and the cursor no longer matches: the
 *   server sends a `reset` instead of replaying from a position that means something else now.
 * - offset: the position of the last event of that channel the client has seen (0 = none).
 *
 * Only `[0-9A-Za-z.]` are used, and 8 channels fit in 128 bytes, so `Last-Event-ID` stays a
 * CORS-safelisted header (no preflight on cross-origin reconnects).
 */
import { base62, fnv1a, isBase62 } from "./hash.ts";

export const CURSOR_VERSION = "1";

/** Most entries a cursor may have; more means it is not one of ours. */
export const MAX_CURSOR_ENTRIES = 64;

const TAG_WIDTH = 4;
const EPOCH_SEED = 0x9e3779b9;
/** Base-36 digits of `Number.MAX_SAFE_INTEGER`, the largest offset. */
const MAX_OFFSET_DIGITS = 11;
const OFFSET_PATTERN = /^[0-9a-z]{1,11}$/;

/**
 * Cursors longer than this are not decoded at all (bounded work for hostile input). Exactly
 * the longest cursor {@link encodeCursor} writes ({@link MAX_CURSOR_ENTRIES} entries with the
 * widest offsets), so every cursor we issue can be decoded.
 */
export const MAX_CURSOR_LENGTH =
  CURSOR_VERSION.length + MAX_CURSOR_ENTRIES * (1 + TAG_WIDTH * 2 + MAX_OFFSET_DIGITS);

/** A channel's position in its history: which history (epoch) and how far (offset). */
export interface StreamPosition {
  readonly epoch: string;
  readonly offset: number;
}

/** Short tag of a channel name, as used in cursors. */
export function channelTag(channel: string): string {
  return base62(fnv1a(channel), TAG_WIDTH);
}

/** Short tag of a history epoch, as used in cursors. */
export function epochTag(epoch: string): string {
  return base62(fnv1a(epoch, EPOCH_SEED), TAG_WIDTH);
}

/**
 * One cursor entry. `tagPrefix` is `channelTag(channel) + epochTag(epoch)`, which callers on a
 * hot path compute once per channel and reuse.
 *
 * @throws {RangeError} unless `offset` is a safe integer ≥ 0: base 36 of anything else has a
 *   `-`, a `.` (the entry separator) or lost digits, and would not decode to `offset`.
 */
export function cursorEntry(tagPrefix: string, offset: number): string {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new RangeError(`cursor offset must be a safe integer ≥ 0, got ${offset}`);
  }
  return tagPrefix + offset.toString(36);
}

/** Joins entries made by {@link cursorEntry} into a cursor. */
export function joinCursor(entries: readonly string[]): string {
  return entries.length === 0 ? CURSOR_VERSION : `${CURSOR_VERSION}.${entries.join(".")}`;
}

/** Encodes the positions of a stream's channels. */
export function encodeCursor(positions: Iterable<readonly [string, StreamPosition]>): string {
  const entries: string[] = [];
  for (const [channel, pos] of positions) {
    entries.push(cursorEntry(channelTag(channel) + epochTag(pos.epoch), pos.offset));
  }
  return joinCursor(entries);
}

/** A decoded cursor: entries by channel tag. */
export interface DecodedCursor {
  readonly entries: ReadonlyMap<string, { readonly epochTag: string; readonly offset: number }>;
}

/** Decodes a cursor, or returns null when it is not a well-formed version-1 cursor. */
export function decodeCursor(text: string): DecodedCursor | null {
  if (typeof text !== "string" || text.length === 0 || text.length > MAX_CURSOR_LENGTH) return null;
  const parts = text.split(".");
  if (parts[0] !== CURSOR_VERSION || parts.length - 1 > MAX_CURSOR_ENTRIES) return null;
  const entries = new Map<string, { epochTag: string; offset: number }>();
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part.length <= TAG_WIDTH * 2) return null;
    const tags = part.slice(0, TAG_WIDTH * 2);
    const offsetText = part.slice(TAG_WIDTH * 2);
    if (!isBase62(tags) || !OFFSET_PATTERN.test(offsetText)) return null;
    // 11 base-36 digits reach 36^11 - 1, past 2^53: such an offset cannot come from us.
    const offset = Number.parseInt(offsetText, 36);
    if (!Number.isSafeInteger(offset)) return null;
    const tag = tags.slice(0, TAG_WIDTH);
    // Two entries for one channel cannot come from us: refuse the whole cursor.
    if (entries.has(tag)) return null;
    entries.set(tag, { epochTag: tags.slice(TAG_WIDTH), offset });
  }
  return { entries };
}

/** What a cursor says about one channel. */
export type CursorLookup =
  /** The cursor has no entry for the channel: it is new to this stream. */
  | { readonly kind: "absent" }
  /** The cursor's position is in the channel's current history. */
  | { readonly kind: "position"; readonly offset: number }
  /** The cursor refers to a history that no longer exists. */
  | { readonly kind: "epoch_changed" };

/** Looks up `channel` in a decoded cursor against the channel's current epoch. */
export function lookupCursor(cursor: DecodedCursor, channel: string, epoch: string): CursorLookup {
  const entry = cursor.entries.get(channelTag(channel));
  if (!entry) return { kind: "absent" };
  if (entry.epochTag !== epochTag(epoch)) return { kind: "epoch_changed" };
  return { kind: "position", offset: entry.offset };
}

/**
 * `base` with the entries of `from` merged in: an entry of `base` for the same channel (by tag)
 * is replaced where it stands, any other is appended. This is how a client starts a channel
 * from a position it got elsewhere (the `cursor` of a history page) on a stream whose cursor
 * already holds other channels: the next open resumes every channel from the merged cursor.
 *
 * - `base` null (no cursor yet): `from`'s entries alone.
 * - `base` not a cursor (garbage kept by an app): returned unchanged. Merging cannot make it
 *   valid, and the server answers it as before (a `reset` with `unknown_cursor` per channel),
 *   which tells the subscriber that the handoff did not happen rather than hiding it.
 * - More than {@link MAX_CURSOR_ENTRIES} entries: `base`'s oldest (leftmost) entries that
 *   `from` does not replace are dropped first, so the result always decodes. (A stream holds
 *   far fewer channels than that, so this bounds hostile input, not real use.)
 *
 * @throws {TypeError} when `from` is not a cursor: it should come from the server, so anything
 *   else is a bug to surface, not to paper over.
 */
export function mergeCursor(base: string | null, from: string): string {
  const incoming = decodeCursor(from);
  if (incoming === null) throw new TypeError(`not a cursor: "${String(from).slice(0, 80)}"`);
  const current = base === null ? { entries: new Map() } : decodeCursor(base);
  if (current === null) return base as string;
  const merged = new Map<string, { readonly epochTag: string; readonly offset: number }>(
    current.entries,
  );
  for (const [tag, entry] of incoming.entries) merged.set(tag, entry);
  for (const tag of merged.keys()) {
    if (merged.size <= MAX_CURSOR_ENTRIES) break;
    if (!incoming.entries.has(tag)) merged.delete(tag);
  }
  return joinCursor(
    [...merged].map(([tag, { epochTag, offset }]) => cursorEntry(tag + epochTag, offset)),
  );
}
