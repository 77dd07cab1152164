export type {
  ChannelKind,
  ChannelName,
  ChannelParseResult,
  ParsedChannel,
} from "./channel.ts";
export {
  isChannelName,
  MAX_CHANNEL_ID_LENGTH,
  MAX_CHANNEL_NAME_LENGTH,
  parseChannel,
  printable,
  roomChannel,
  userChannel,
  validateChannelId,
} from "./channel.ts";
export { CloseCode, CloseReason, shouldReconnect } from "./codes.ts";
export type { CursorLookup, DecodedCursor, StreamPosition } from "./cursor.ts";
export {
  CURSOR_VERSION,
  channelTag,
  cursorEntry,
  decodeCursor,
  encodeCursor,
  epochTag,
  joinCursor,
  lookupCursor,
  MAX_CURSOR_ENTRIES,
  MAX_CURSOR_LENGTH,
  mergeCursor,
} from "./cursor.ts";
export type {
  CloseEvent,
  ReadyEvent,
  RealtimeEvent,
  ResetEvent,
} from "./event.ts";
export {
  ControlEvent,
  EVENT_FIELD_PATTERN,
  EVENT_TYPE_PATTERN,
  EventType,
  MAX_EVENT_BYTES,
  MAX_EVENT_DEPTH,
  MAX_EVENT_FIELDS,
  nowTimestamp,
  ResetReason,
  validateEventInput,
  validateEventType,
} from "./event.ts";
export { fnv1a } from "./hash.ts";
