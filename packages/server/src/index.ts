export type {
  Broker,
  BrokerListener,
  BrokerMessage,
  Idempotency,
  PublishOptions,
  PublishResult,
} from "./broker.ts";
export {
  ChannelCapacityError,
  DEFAULT_IDEMPOTENCY_WINDOW_MS,
  IdempotencyConflict,
  idempotencyOf,
  isRequestId,
  MAX_IDEMPOTENCY_KEY_LENGTH,
  requestIdOf,
} from "./broker.ts";
export type { FetchRequest, SequencerOutput } from "./channel-sequencer.ts";
export { ChannelSequencer } from "./channel-sequencer.ts";
export type { ChannelTableStats } from "./channel-table.ts";
export {
  DEFAULT_CHANNEL_IDLE_TTL_MS,
  DEFAULT_MAX_CHANNELS,
  DEFAULT_MAX_HISTORY_BYTES,
} from "./channel-table.ts";
export type { Connection } from "./connection.ts";
export { Http2StreamConnection, NodeHttpConnection, SSE_HEADERS } from "./connection.ts";
export type {
  ConnectionLedger,
  MemoryConnectionLedgerOptions,
  Release,
} from "./connection-ledger.ts";
export { addCount, MemoryConnectionLedger } from "./connection-ledger.ts";
export type { Delivery } from "./fan-out.ts";
export type { HistoryPage, HistoryRetention, HistoryStore } from "./history-store.ts";
export { DEFAULT_RETENTION } from "./history-store.ts";
export type { ErrorCode, ErrorEntry, HubAction } from "./http-errors.ts";
export {
  AppError,
  appError,
  Errors,
  errorBody,
  fromHubError,
  refusalCode,
} from "./http-errors.ts";
export type {
  EventInput,
  HubErrorCode,
  HubOptions,
  OpenStreamRequest,
  StreamLifecycle,
} from "./hub.ts";
export { Hub, HubError } from "./hub.ts";
export {
  IDEMPOTENCY_HEADERS_SCHEMA,
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENCY_KEY_PATTERN,
  REPLAYED_HEADER,
  readIdempotencyKey,
  requestPublishOptions,
  scopedIdempotencyKey,
} from "./idempotency-key.ts";
export type { MemoryBrokerOptions, MemoryBusOptions } from "./memory-broker.ts";
export { DEFAULT_MAX_IDEMPOTENCY_KEYS, MemoryBroker, MemoryBus } from "./memory-broker.ts";
export type { MemoryPresenceStoreOptions } from "./memory-presence-store.ts";
export { MemoryPresenceBackend, MemoryPresenceStore } from "./memory-presence-store.ts";
export type { Metrics } from "./metrics.ts";
export { noopMetrics } from "./metrics.ts";
export type {
  EventsHandler,
  EventsHandlerOptions,
  NodeRequest,
} from "./node-handler.ts";
export { createEventsHandler } from "./node-handler.ts";
export type { PresenceMetrics, PresenceOptions } from "./presence.ts";
export { Presence } from "./presence.ts";
export type {
  PresenceApplyResult,
  PresenceChange,
  PresenceGrace,
  PresenceReapResult,
  PresenceSnapshot,
  PresenceStatus,
  PresenceStore,
  PresenceTimings,
  PresenceTransition,
  PresenceUser,
} from "./presence-store.ts";
export { DEFAULT_PRESENCE_TIMINGS, hasPresence } from "./presence-store.ts";
export type { PublisherOptions } from "./publisher.ts";
export { Publisher } from "./publisher.ts";
export type { SseField, SseMessage } from "./sse-encoder.ts";
export {
  encodeComment,
  encodeData,
  encodeEventName,
  encodeId,
  encodeMessage,
  encodeRetry,
  HEARTBEAT,
  SseFieldError,
} from "./sse-encoder.ts";
export type { ChannelStart } from "./sse-stream.ts";
export { SseStream } from "./sse-stream.ts";
export type {
  AccessRequest,
  Authorize,
  ChannelAction,
  OpenUserStream,
  RealtimeUser,
  StreamRequest,
  StreamResponse,
} from "./stream-request.ts";
export {
  DEFAULT_MAX_CHANNELS_PER_STREAM,
  DEFAULT_MAX_STREAMS_PER_USER,
  defaultAuthorize,
  hostHeaders,
  openRequestedStream,
  openUserStream,
  parseStreamChannels,
  releaseOnClose,
  requireAccess,
  responseClosed,
  streamConnection,
  streamCursor,
} from "./stream-request.ts";
