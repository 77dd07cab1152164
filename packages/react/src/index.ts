export type { RealtimeProviderProps } from "./realtime-provider.ts";
export { RealtimeProvider, useRealtimeClient } from "./realtime-provider.ts";
export { useConnectionState } from "./use-connection-state.ts";
export type { UseEventChannelOptions } from "./use-event-channel.ts";
export { useEventChannel } from "./use-event-channel.ts";
export { usePresence } from "./use-presence.ts";
