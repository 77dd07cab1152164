/**
 * The `:channel` of `/api/channels/:channel/…` routes (presence, history): its schema, and the
 * channel it names — a full name (`channel:general`, `user:<id>`) or, as in the chat API, a
 * room's bare id (`general`).
 */
import { type ChannelName, parseChannel, printable } from "@realtime/protocol";
import { appError, Errors } from "@realtime/server";

export const CHANNEL_PARAMS = {
  type: "object",
  properties: { channel: { type: "string", minLength: 1, maxLength: 200 } },
  required: ["channel"],
  additionalProperties: false,
} as const;

/** The channel a route's `:channel` names; 400 `RT_ERR_BAD_CHANNEL` when it names none. */
export function channelParam(params: unknown): ChannelName {
  const raw = (params as { channel: string }).channel;
  const parsed = parseChannel(raw.includes(":") ? raw : `channel:${raw}`);
  if (!parsed.ok) throw appError(Errors.BAD_CHANNEL, `${parsed.reason}: "${printable(raw)}"`);
  return parsed.channel.name;
}
