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
  /**
   * Most events a channel's history keeps (`HISTORY_MAX_LENGTH`), in Redis and in memory: what
   * a resuming stream can replay and `GET /api/channels/:channel/messages` can page through.
   * Redis trims approximately (`MAXLEN ~`), so a few more may be held. Default 10000; 1–1000000.
   */
  readonly historyMaxLength: number;
  /**
   * Longest an event stays in history, in seconds (`HISTORY_TTL_SECONDS`). At most
   * `CHANNEL_IDLE_TTL_MS` (history cannot outlive the channel's epoch). Default 300, or the
   * idle TTL when that is shorter.
   */
  readonly historyTtlSeconds: number;
}

export function readChannels(r: EnvReader): ChannelStateConfig {
  const channels: ChannelStateConfig = {
    idleTtlMs: r.int("CHANNEL_IDLE_TTL_MS", 600_000, 1_000, 86_400_000),
    maxChannels: r.int("MAX_CHANNELS", 100_000, 1),
    historyMaxBytes: r.int("HISTORY_MAX_BYTES", 64 * 1024 * 1024, 1024),
    historyMaxLength: r.int("HISTORY_MAX_LENGTH", 10_000, 1, 1_000_000),
    historyTtlSeconds: r.int("HISTORY_TTL_SECONDS", 300, 1, 86_400),
  };
  const idleSeconds = Math.floor(channels.idleTtlMs / 1000);
  if (r.raw("HISTORY_TTL_SECONDS") === undefined) {
    // Unset: the default, within a shorter idle TTL.
    return { ...channels, historyTtlSeconds: Math.min(channels.historyTtlSeconds, idleSeconds) };
  }
  if (channels.historyTtlSeconds > idleSeconds) {
    // The epoch goes with the channel's idle state: history kept longer could not be resumed.
    r.problems.push(
      `HISTORY_TTL_SECONDS (${channels.historyTtlSeconds}) must not exceed CHANNEL_IDLE_TTL_MS (${channels.idleTtlMs}) in seconds`,
    );
  }
  return channels;
}
