/** `config.limits`: what one pod holds at most — streams, channels per stream, slow clients, replays. */
import type { EnvReader } from "./env.ts";

export interface LimitsConfig {
  /** Most concurrent SSE streams per pod (`MAX_CONNECTIONS`). Default 10000. */
  readonly maxConnections: number;
  /** Most channels one SSE stream may carry (`MAX_CHANNELS_PER_STREAM`). Default 16. */
  readonly maxChannelsPerStream: number;
  /** Bytes queued for a client that is not reading before it is cut off (`SLOW_CLIENT_MAX_BYTES`). Default 1048576. */
  readonly slowClientMaxBytes: number;
  /** Milliseconds a client may stay unwritable before it is cut off (`SLOW_CLIENT_MAX_STALL_MS`). Default 10000. */
  readonly slowClientMaxStallMs: number;
  /** Longest chat message, in characters (`MAX_CHAT_CONTENT_LENGTH`). Default 4000. */
  readonly maxChatContentLength: number;
  /**
   * Resuming streams replaying history at once on a pod (`MAX_REPLAYS`); more wait their turn,
   * connected. Each holds one page of history (64 events) while its client drains it. Default 32.
   */
  readonly maxReplays: number;
  /** Replays of one user at once on a pod (`MAX_REPLAYS_PER_USER`). Default 2. */
  readonly maxReplaysPerUser: number;
}

export function readLimits(r: EnvReader): LimitsConfig {
  return {
    maxConnections: r.int("MAX_CONNECTIONS", 10000),
    maxChannelsPerStream: r.int("MAX_CHANNELS_PER_STREAM", 16),
    slowClientMaxBytes: r.int("SLOW_CLIENT_MAX_BYTES", 1048576),
    slowClientMaxStallMs: r.int("SLOW_CLIENT_MAX_STALL_MS", 10000),
    maxChatContentLength: r.int("MAX_CHAT_CONTENT_LENGTH", 4000),
    maxReplays: r.int("MAX_REPLAYS", 32, 1),
    maxReplaysPerUser: r.int("MAX_REPLAYS_PER_USER", 2, 1),
  };
}
