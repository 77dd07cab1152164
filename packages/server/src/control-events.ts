/** The control events a stream writes of its own: `ready`, `reset` and `close`. */
import {
  type ChannelName,
  type CloseCode,
  CloseReason,
  ControlEvent,
  nowTimestamp,
  type ResetReason,
} from "@realtime/protocol";
import { encodeData, encodeEventName, encodeId, encodeRetry } from "./sse-encoder.ts";

/** The `ready` event: the stream's channels, and its starting cursor as its `id:`. */
export function readyBlock(channels: readonly ChannelName[], cursor: string, now: number): string {
  const data = JSON.stringify({ type: ControlEvent.Ready, channels, timestamp: nowTimestamp(now) });
  return `${encodeEventName(ControlEvent.Ready)}${encodeId(cursor)}${encodeData(data)}`;
}

/** A `reset` control event; with `cursor`, it also moves the client's cursor (`id:`). */
export function resetBlock(channel: ChannelName, reason: ResetReason, cursor?: string): string {
  const data = JSON.stringify({
    type: ControlEvent.Reset,
    channel,
    reason,
    timestamp: nowTimestamp(),
  });
  const id = cursor === undefined ? "" : encodeId(cursor);
  return `${encodeEventName(ControlEvent.Reset)}${id}${encodeData(data)}`;
}

/**
 * The `close` event carrying `code`, with a `retry:` hint of `retryMs`; `channels` names the
 * channels the close is about (a `forbidden` close: those no longer granted).
 */
export function closeBlock(
  code: CloseCode,
  retryMs: number,
  now: number,
  channels?: readonly ChannelName[],
): string {
  const data = JSON.stringify({
    type: ControlEvent.Close,
    code,
    reason: CloseReason[code],
    ...(channels && { channels }),
    timestamp: nowTimestamp(now),
  });
  return `${encodeEventName(ControlEvent.Close)}${encodeRetry(retryMs)}${encodeData(data)}`;
}
