/**
 * Channel names.
 *
 * A channel is `user:<id>` (private to one user) or `channel:<id>` (a shared room).
 * The id is deliberately narrow: it travels in URLs, Redis keys, SSE fields and cursors,
 * so it is restricted to characters that need no escaping in any of them.
 */

/** The two kinds of channel. */
export type ChannelKind = "user" | "channel";

/** A channel name that passed {@link parseChannel}. */
export type ChannelName = `${ChannelKind}:${string}`;

/** Longest id after the prefix, in characters (ASCII, so also bytes). */
export const MAX_CHANNEL_ID_LENGTH = 128;

/** Longest channel name including its prefix. */
export const MAX_CHANNEL_NAME_LENGTH = "channel:".length + MAX_CHANNEL_ID_LENGTH;

/**
 * First character: letter, digit or underscore (so no `.`/`..`/`-x` lookalikes);
 * then letters, digits and `_ . - ~ @`. No whitespace, no control characters, no `{}` (Redis
 * Cluster hash tags), no `:` (prefix separator), nothing that needs percent-encoding.
 */
const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.~@-]*$/;

export interface ParsedChannel {
  readonly name: ChannelName;
  readonly kind: ChannelKind;
  readonly id: string;
}

export type ChannelParseResult =
  | { readonly ok: true; readonly channel: ParsedChannel }
  | { readonly ok: false; readonly reason: string };

/** Checks an id (the part after the prefix) against the channel grammar. */
export function validateChannelId(id: string): string | null {
  if (id.length === 0) return "id is empty";
  if (id.length > MAX_CHANNEL_ID_LENGTH) return `id is longer than ${MAX_CHANNEL_ID_LENGTH}`;
  if (!ID_PATTERN.test(id)) return "id has a character outside [A-Za-z0-9_.~@-]";
  return null;
}

/** Parses a full channel name such as `user:u_42` or `channel:general`. */
export function parseChannel(name: string): ChannelParseResult {
  if (typeof name !== "string") return { ok: false, reason: "channel must be a string" };
  if (name.length > MAX_CHANNEL_NAME_LENGTH) {
    return { ok: false, reason: `channel is longer than ${MAX_CHANNEL_NAME_LENGTH}` };
  }
  const colon = name.indexOf(":");
  if (colon < 0) return { ok: false, reason: "channel needs a prefix: user:<id> or channel:<id>" };
  const prefix = name.slice(0, colon);
  if (prefix !== "user" && prefix !== "channel") {
    return { ok: false, reason: `unknown channel prefix "${printable(prefix)}"` };
  }
  const id = name.slice(colon + 1);
  const problem = validateChannelId(id);
  if (problem) return { ok: false, reason: `channel ${problem}` };
  return { ok: true, channel: { name: name as ChannelName, kind: prefix, id } };
}

/** True when `name` is a valid channel name. */
export function isChannelName(name: unknown): name is ChannelName {
  return typeof name === "string" && parseChannel(name).ok;
}

/** The private channel of a user. Throws if the id is not a valid channel id. */
export function userChannel(userId: string): ChannelName {
  const problem = validateChannelId(userId);
  if (problem) throw new TypeError(`invalid user id for a channel: ${problem}`);
  return `user:${userId}`;
}

/**
 * Accepts a room as its bare id (`general`) or its full name (`channel:general`) and returns
 * the full name, or a reason when it is neither.
 */
export function roomChannel(input: string): ChannelParseResult {
  const name = input.includes(":") ? input : `channel:${input}`;
  const parsed = parseChannel(name);
  if (parsed.ok && parsed.channel.kind !== "channel") {
    return { ok: false, reason: "a room must be a channel:<id>, not a user channel" };
  }
  return parsed;
}

/**
 * Control characters (C0, DEL, C1), invisible format characters (bidi overrides, zero-width
 * characters, BOM), line and paragraph separators, and lone surrogates: anything that can
 * break or disguise a log line or an error message.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/**
 * Shows a rejected value in an error message without echoing control characters: each
 * unprintable character becomes `?`, and values longer than `max` UTF-16 units (default 40)
 * are cut, never inside a surrogate pair, and end with `…`.
 */
export function printable(value: string, max = 40): string {
  const safe = value.replace(UNPRINTABLE, "?");
  if (safe.length <= max) return safe;
  // Cutting between the halves of a pair would leave a lone surrogate in the message.
  const code = safe.charCodeAt(max - 1);
  const end = code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
  return `${safe.slice(0, end)}…`;
}
