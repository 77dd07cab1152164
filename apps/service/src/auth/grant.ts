/**
 * The `realtime` claim: channel access a token carries (docs/security.md).
 *
 *     "realtime": { "subscribe": ["channel:team-42-*", "channel:lobby"], "publish": ["channel:team-42-chat"] }
 *
 * Each list holds channel patterns: an exact channel name, or a prefix ending in `*` that
 * matches every channel starting with it (`channel:*` is every room). When the claim is present
 * it is the token's whole grant: what it does not list is refused, and nothing else is asked.
 * A claim that is present but malformed makes the token invalid (fail closed, never "no claim").
 */

/** What a token's `realtime` claim grants, per action. */
export interface ChannelGrant {
  readonly subscribe: readonly string[];
  readonly publish: readonly string[];
}

/** The two things a grant is about. */
export type ChannelAction = keyof ChannelGrant;

/** The claim's name in a token's payload. */
export const GRANT_CLAIM = "realtime";

/** Most patterns per list: a token is sent with every request, and matched linearly. */
export const MAX_GRANT_PATTERNS = 64;

/** A channel name, or a prefix of one followed by `*`. */
const PATTERN = /^[A-Za-z0-9:_.-]{0,200}\*?$/;

/**
 * The grant in a token's `realtime` claim: undefined when the token has none, null when it has
 * one that is not a valid grant.
 */
export function parseGrant(claim: unknown): ChannelGrant | null | undefined {
  if (claim === undefined) return undefined;
  if (claim === null || typeof claim !== "object" || Array.isArray(claim)) return null;
  const { subscribe = [], publish = [], ...rest } = claim as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return null;
  const lists = [subscribe, publish].map(parsePatterns);
  const [sub, pub] = lists;
  if (!sub || !pub) return null;
  return { subscribe: sub, publish: pub };
}

function parsePatterns(list: unknown): string[] | null {
  if (!Array.isArray(list) || list.length > MAX_GRANT_PATTERNS) return null;
  for (const pattern of list) {
    if (typeof pattern !== "string" || pattern.length === 0 || !PATTERN.test(pattern)) return null;
  }
  return list as string[];
}

/** Whether `grant` allows `action` on `channel`. */
export function grants(grant: ChannelGrant, action: ChannelAction, channel: string): boolean {
  for (const pattern of grant[action]) {
    if (pattern.endsWith("*") ? channel.startsWith(pattern.slice(0, -1)) : pattern === channel) {
      return true;
    }
  }
  return false;
}
