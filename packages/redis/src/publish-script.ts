/**
 * The one Lua script behind `publish` and `position`: position assignment, history append and
 * live fan-out happen atomically on the channel's slot, so the live path can never carry an
 * event the history does not have, and offsets are contiguous per epoch.
 */
import { createHash } from "node:crypto";
import type { StreamPosition } from "@realtime/protocol";
import type { Redis } from "ioredis";
import type { ChannelKeys } from "./redis-keys.ts";

/**
 * KEYS: 1 meta hash, 2 history stream, 3 pub/sub channel (declared so Cluster checks its slot).
 * ARGV: 1 mode (`publish` | `position` | `rebase`), 2 candidate epoch, 3 data (for `rebase`:
 *       `<offset>:<epoch>`, a position a pod saw), 4 history MAXLEN, 5 history TTL s, 6 meta
 *       TTL s, 7 publish command (`PUBLISH` | `SPUBLISH`).
 *
 * The epoch is created when the meta hash is missing (never published, or expired/lost), from
 * the candidate the caller passed; a new epoch starts an empty history, so any stale stream is
 * deleted. The stream entry id is `<offset>-0`, so history reads by offset are exact.
 * Frame: `<epoch>:<offset>:<data>`.
 *
 * `rebase`: the channel is below a position a pod saw in the same epoch — Redis lost a tail
 * it had acknowledged (restarted from an older snapshot, or a replica promoted before it had
 * the last writes). Its next offsets would repeat ones already delivered with other events,
 * so the channel starts a new epoch, as if its history were lost. Does nothing when the
 * channel is in another epoch or not below that position (another pod rebased it first).
 */
export const PUBLISH_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
end
if ARGV[1] == 'position' then
  return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))}
end
if ARGV[1] == 'rebase' then
  local colon = string.find(ARGV[3], ':', 1, true)
  local seen = tonumber(string.sub(ARGV[3], 1, colon - 1))
  local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
  if epoch ~= string.sub(ARGV[3], colon + 1) or offset >= seen then return {epoch, offset} end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'offset', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
  return {ARGV[2], 0}
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset .. '-0', 'd', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call(ARGV[7], KEYS[3], epoch .. ':' .. offset .. ':' .. ARGV[3])
return {epoch, offset}
`;

const SHA = createHash("sha1").update(PUBLISH_SCRIPT).digest("hex");

/** What the script needs from a client; both `Redis` and `Cluster` fit. */
export type ScriptClient = Pick<Redis, "evalsha" | "eval">;

export interface ScriptCall {
  readonly mode: "publish" | "position" | "rebase";
  readonly keys: ChannelKeys;
  readonly candidateEpoch: string;
  readonly data: string;
  readonly historySize: number;
  readonly historyTtlSeconds: number;
  readonly metaTtlSeconds: number;
  readonly sharded: boolean;
}

/** Runs the script by SHA and falls back to sending its source once Redis answers NOSCRIPT. */
export async function runPublishScript(
  client: ScriptClient,
  call: ScriptCall,
): Promise<StreamPosition> {
  const args = [
    call.keys.meta,
    call.keys.history,
    call.keys.pubsub,
    call.mode,
    call.candidateEpoch,
    call.data,
    call.historySize,
    call.historyTtlSeconds,
    call.metaTtlSeconds,
    call.sharded ? "SPUBLISH" : "PUBLISH",
  ];
  let reply: unknown;
  try {
    reply = await client.evalsha(SHA, 3, ...args);
  } catch (error) {
    // NOSCRIPT means nothing ran, so sending the source is safe (no double publish).
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    reply = await client.eval(PUBLISH_SCRIPT, 3, ...args);
  }
  return toPosition(reply);
}

function toPosition(reply: unknown): StreamPosition {
  if (Array.isArray(reply) && reply.length === 2) {
    const [epoch, offset] = reply as unknown[];
    if (typeof epoch === "string" && typeof offset === "number" && Number.isSafeInteger(offset)) {
      return { epoch, offset };
    }
  }
  throw new Error(`unexpected reply from the publish script: ${JSON.stringify(reply)}`);
}
