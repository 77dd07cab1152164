export type { RealtimeProviderProps } from "./realtime-provider.ts";
export { RealtimeProvider, useRealtimeClient } from "./realtime-provider.ts";
export type { ChannelHistory } from "./use-channel-history.ts";
export { useChannelHistory } from "./use-channel-history.ts";
export { useConnectionState } from "./use-connection-state.ts";
export type { UseEventChannelOptions } from "./use-event-channel.ts";
export { useEventChannel } from "./use-event-channel.ts";
export { usePresence } from "./use-presence.ts";
