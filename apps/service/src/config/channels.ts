/** `config.channels`: what the broker keeps per channel, and for how long. */
import type { EnvReader } from "./env.ts";

/** What the broker keeps per channel, and for how long. */
export interface ChannelStateConfig {
  /**
   * How long a channel's epoch and offset outlive its last use — a publish, a position read, a
   * pod's subscribers (pods read every subscribed channel's position every 15 s, or every
   * quarter of this if shorter) — in ms (`CHANNEL_IDLE_TTL_MS`). Also the life of a Redis
   * channel's presence version counter, and the longest its history outlives it. A client
   * resuming after that gets a `reset` for the channel. Default 600000 (10 minutes); 1000–86400000.
   */
  readonly idleTtlMs: number;
  /**
   * Embedded mode: channels held in memory at most (`MAX_CHANNELS`); past it the least recently
   * used channel without subscribers is released, and when every one has subscribers a new
   * channel is refused with 503. Default 100000.
   */
  readonly maxChannels: number;
  /**
   * Embedded mode: bytes of history held in memory over every channel (`HISTORY_MAX_BYTES`);
   * past it the least recently published channels lose their oldest events first. Default
   * 67108864 (64 MiB).
   */
  readonly historyMaxBytes: number;
}

export function readChannels(r: EnvReader): ChannelStateConfig {
  return {
    idleTtlMs: r.int("CHANNEL_IDLE_TTL_MS", 600_000, 1_000, 86_400_000),
    maxChannels: r.int("MAX_CHANNELS", 100_000, 1),
    historyMaxBytes: r.int("HISTORY_MAX_BYTES", 64 * 1024 * 1024, 1024),
  };
}
