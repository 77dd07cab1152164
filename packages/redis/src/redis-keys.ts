/**
 * Where a channel lives in Redis, and the frame its live messages travel in.
 *
 * Every name of one channel carries the channel name as a Redis Cluster hash tag (`{…}`), so
 * the meta hash, the history stream and the (sharded) pub/sub channel of a channel all hash to
 * the same slot and the publish script can touch them atomically on one node:
 *
 *     <prefix>:{channel:general}          pub/sub channel (the spec's `realtime:channel:<id>`
 *     <prefix>:{user:u_1}                 and `realtime:user:<id>`, with the hash tag Cluster needs)
 *     <prefix>:meta:{channel:general}     hash: epoch, offset
 *     <prefix>:history:{channel:general}  stream: entry id `<offset>-0`, field `d` = event JSON
 *     <prefix>:idem:{channel:general}:<key>  string `<offset>:<epoch>`: a publish with
 *                                          idempotency key `<key>`, PX = the key's window
 *
 * Channel names cannot contain `{` or `}` (see `parseChannel`), so the tag is always the whole
 * channel name.
 */
import type { ChannelName } from "@realtime/protocol";

export interface ChannelKeys {
  /** The Redis pub/sub (or sharded pub/sub) channel. */
  readonly pubsub: string;
  /** Hash with fields `epoch` and `offset`. */
  readonly meta: string;
  /** Stream of the channel's recent events; entry id `<offset>-0`. */
  readonly history: string;
}

export function channelKeys(prefix: string, channel: ChannelName): ChannelKeys {
  return {
    pubsub: `${prefix}:{${channel}}`,
    meta: `${prefix}:meta:{${channel}}`,
    history: `${prefix}:history:{${channel}}`,
  };
}

/**
 * The key that remembers the publish made with idempotency key `key` on `channel`. The key may
 * hold any characters, braces too: Redis takes the hash tag from the first `{…}`, which is the
 * channel's (a prefix never has braces), so the key stays in the channel's slot.
 */
export function idempotencyKey(prefix: string, channel: ChannelName, key: string): string {
  return `${prefix}:idem:{${channel}}:${key}`;
}

/**
 * The private channel a pod publishes liveness probes to. `shard` distinguishes the probe
 * channels of one pod in Cluster mode, where every master needs a probe of its own.
 */
export function probeChannel(prefix: string, podId: string, shard?: number): string {
  return shard === undefined ? `${prefix}:{probe:${podId}}` : `${prefix}:{probe:${podId}:${shard}}`;
}

/**
 * A live message as published by the script:
 * `<epoch>:<offset>[;<publishedAt>[;<requestId>]]:<life>:<data>`. `life` is the first 8 hex
 * digits of the `master_replid` of the Redis that wrote it (see `BrokerMessage.life`);
 * `publishedAt` (ms since the Unix epoch, the publisher's clock) and the publish request's id
 * (its colons written `%3A`) are the live path's trace, absent from history; the data may
 * contain colons. The trace sits in the offset's field so that a pod of a version before it
 * refuses the frame (its offset is not a number) and repairs the gap from history, rather
 * than delivering the trace as part of the data.
 */
export interface Frame {
  readonly epoch: string;
  readonly offset: number;
  readonly life: string;
  readonly data: string;
  readonly publishedAt?: number | undefined;
  readonly requestId?: string | undefined;
}

/** The frame's trace, as the script inserts it after the offset: `;<publishedAt>[;<requestId>]` or empty. */
export function encodeTrace(
  publishedAt: number | undefined,
  requestId: string | undefined,
): string {
  if (publishedAt === undefined) return "";
  return requestId === undefined
    ? `;${publishedAt}`
    : `;${publishedAt};${requestId.replaceAll(":", "%3A")}`;
}

export function encodeFrame(frame: Frame): string {
  const trace = encodeTrace(frame.publishedAt, frame.requestId);
  return `${frame.epoch}:${frame.offset}${trace}:${frame.life}:${frame.data}`;
}

const LIFE = /^[0-9a-f]{8}$/;
const POSITION = /^([1-9][0-9]{0,15})(?:;([0-9]{1,16})(?:;([A-Za-z0-9._%-]{1,384}))?)?$/;

/** Parses a frame, or returns null when `text` is not one. */
export function parseFrame(text: string): Frame | null {
  const first = text.indexOf(":");
  if (first <= 0) return null;
  const second = text.indexOf(":", first + 1);
  if (second < 0) return null;
  const position = POSITION.exec(text.slice(first + 1, second));
  if (position === null) return null;
  const third = second + 9;
  const life = text.slice(second + 1, third);
  if (text[third] !== ":" || !LIFE.test(life)) return null;
  const [, offset, publishedAt, requestId] = position;
  return {
    epoch: text.slice(0, first),
    offset: Number(offset),
    life,
    data: text.slice(third + 1),
    publishedAt: publishedAt === undefined ? undefined : Number(publishedAt),
    requestId: requestId?.replaceAll("%3A", ":"),
  };
}

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

const encoder = new TextEncoder();

/** The Redis Cluster slot of `key` (0–16383), honouring `{hash tags}` like Redis does. */
export function keySlot(key: string): number {
  let hashed = key;
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) hashed = key.slice(open + 1, close);
  }
  return crc16(encoder.encode(hashed)) % 16384;
}
