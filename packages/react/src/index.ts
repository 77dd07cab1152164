"use client";
// First statement of the entry: the hooks hold state and run effects, so in React Server
// Components apps (Next.js app router) this is a client module. tsc keeps the directive at the
// top of dist/index.js (e2e/packages/ssr.test.ts checks the installed file).

export type { RealtimeProviderProps } from "./realtime-provider.ts";
export { RealtimeProvider, useRealtimeClient } from "./realtime-provider.ts";
export type { ChannelHistory } from "./use-channel-history.ts";
export { useChannelHistory } from "./use-channel-history.ts";
export { useConnectionState } from "./use-connection-state.ts";
export type { UseEventChannelOptions } from "./use-event-channel.ts";
export { useEventChannel } from "./use-event-channel.ts";
export { usePresence } from "./use-presence.ts";
