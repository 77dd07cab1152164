/** The resumable stream client, its transports and the per-channel check. */
export {
  type ChannelCheck,
  type ChannelLog,
  checkChannel,
  perfect,
  positionOf,
  type ReceivedEvent,
} from "./channel-check.ts";
export { type ConnectOptions, StreamClient } from "./stream-client.ts";
export { H2Sessions, h2, http1, type StreamHandlers, type StreamTransport } from "./transport.ts";
