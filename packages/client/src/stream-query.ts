/**
 * What one stream open asks the server for: its channels and the cursor to resume from, as the
 * query string of `GET /api/events` (the `lastEventId` parameter carries the cursor on a first
 * open, when `EventSource` has no `Last-Event-ID` to send).
 */
import type { ChannelName } from "@realtime/protocol";

/** `channel=…&channel=…[&lastEventId=…]`. */
export function streamQuery(channels: readonly ChannelName[], cursor: string | null): string {
  const query = new URLSearchParams();
  for (const channel of channels) query.append("channel", channel);
  if (cursor) query.set("lastEventId", cursor);
  return query.toString();
}

/** Channel sets are small (the server allows 16 per stream): a linear scan is fine. */
export function sameChannels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
}
