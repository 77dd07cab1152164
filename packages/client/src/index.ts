export type { BackoffOptions } from "./backoff.ts";
export { backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";
export type {
  ChannelHistoryOptions,
  ChannelHistorySnapshot,
  ChannelHistoryStore,
} from "./channel-history.ts";
export { createChannelHistory } from "./channel-history.ts";
export type { ChannelHandlers } from "./channel-registry.ts";
export type {
  EventMap,
  EventOf,
  HistoryHandlers,
  RealtimeClient,
  RealtimeClientOptions,
  SubscribeOptions,
  Subscription,
} from "./client-api.ts";
export type {
  ConnectionSnapshot,
  ConnectionState,
  StateChange,
  StateReason,
} from "./connection-state.ts";
export type { Connectivity } from "./connectivity.ts";
export { alwaysOnline, defaultConnectivity } from "./connectivity.ts";
export type {
  EventSourceFactory,
  EventSourceInit,
  EventSourceLike,
  FetchingEventSourceClass,
  FetchLike,
  TokenGetter,
} from "./event-source.ts";
export { globalEventSource, withBearerToken } from "./event-source.ts";
export type { HistoryEvent, HistoryOptions, HistoryPage } from "./history-page.ts";
export { MAX_HISTORY_LIMIT } from "./history-page.ts";
export type { PresenceEvent, PresenceUser } from "./presence-state.ts";
export { createRealtimeClient } from "./realtime-client.ts";
export { RealtimeHttpError } from "./realtime-http-error.ts";
export type {
  PresenceSnapshot,
  PresenceStatus,
  PresenceStore,
  PresenceStoreOptions,
} from "./room-presence.ts";
export { createPresenceStore } from "./room-presence.ts";
export type { Timers } from "./timers.ts";
