/**
 * The one Lua script behind `publish` and `position`: position assignment, history append and
 * live fan-out happen atomically on the channel's slot, so the live path can never carry an
 * event the history does not have, and offsets are contiguous per epoch.
 */
import { createHash } from "node:crypto";
import type { StreamPosition } from "@realtime/protocol";
import type { Redis } from "ioredis";
import type { ChannelKeys } from "./redis-keys.ts";
import { type ReplicaWait, withWait } from "./replication.ts";

/**
 * KEYS: 1 meta hash, 2 history stream, 3 pub/sub channel (declared so Cluster checks its slot),
 *       4 (optional, `publish` only) the idempotency key of this publish.
 * ARGV: 1 mode (`publish` | `position` | `rebase`), 2 candidate epoch, 3 data (for `rebase`:
 *       `<offset>:<epoch>`, a position a pod saw), 4 history MAXLEN, 5 history TTL s, 6 meta
 *       TTL s, 7 publish command (`PUBLISH` | `SPUBLISH`), 8 idempotency window ms and 9 the
 *       publish's fingerprint (both with KEYS[4]).
 *
 * The epoch is created when the meta hash is missing (never published, or expired/lost), from
 * the candidate the caller passed — by `position` too, so that the first publish stays in the
 * epoch a reader saw; the meta hash then lives one meta TTL (ARGV 6) from its last use, a
 * publish or a `position`, and a channel only read costs one small hash for that long; a new epoch starts an empty history, so any stale stream is
 * deleted. The stream entry id is `<offset>-0`, so history reads by offset are exact.
 * Frame: `<epoch>:<offset>:<life>:<data>`; the history entry holds `d` (data) and `l` (life):
 * `life` is the first 8 hex digits of the writing Redis's `master_replid`. Two messages at one
 * offset with different lives come from two histories: a master frozen past its node timeout
 * wakes, still a master for a moment, and runs what its sockets had buffered at offsets its
 * promoted replica is giving to other events (`BrokerMessage.life`).
 *
 * `rebase`: the channel is below a position a pod saw in the same epoch — Redis lost a tail
 * it had acknowledged (restarted from an older snapshot, or a replica promoted before it had
 * the last writes). Its next offsets would repeat ones already delivered with other events,
 * so the channel starts a new epoch, as if its history were lost. Does nothing when the
 * channel is in another epoch or not below that position (another pod rebased it first).
 * ARGV 3 `<offset>:<epoch>:conflict`: a pod saw an offset it had delivered carry other data —
 * the channel went back and was published past where it was: a new epoch whatever its offset
 * (still not when it left that epoch).
 *
 * Redis going back: every touch compares the channel's `life` (the `master_replid` of the
 * Redis that last wrote its meta) with the Redis running the script now. A Redis restarted
 * from its RDB or AOF has a new replication id and may have lost what it acknowledged after
 * its last save — the lost tail leaves no trace in what was restored, and if no pod delivered
 * it no pod remembers it either. So a channel last written by another life starts a new epoch
 * (its streams get one `reset`), unless this Redis is a replica of that one promoted by a
 * failover (`master_replid2` is the old id: replication, not a disk, carried the channel on).
 * A meta without `life` (written before this check) takes the current one. Costs one
 * `INFO replication` per call (about 4 µs of Redis CPU).
 *
 * Idempotent `publish` (KEYS[4] given): when the key exists, the publish was made within its
 * window — the script touches nothing and returns the position stored in it,
 * `<offset>:<epoch>:<fingerprint>` (even if the channel has moved to another epoch since), with
 * a third element `1`, or `2` when the stored fingerprint is not this publish's (the key was
 * reused for another event). Otherwise it publishes and stores the new position and the
 * fingerprint in the key (`SET NX PX <window>`). Check and publish
 * are one script, so of concurrent publishes with one key (any pods) exactly one publishes.
 * The key carries the channel's hash tag, so Cluster keeps it in the channel's slot.
 */
export const PUBLISH_SCRIPT = `
if KEYS[4] and ARGV[1] == 'publish' then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local first = string.find(seen, ':', 1, true)
    local second = string.find(seen, ':', first + 1, true)
    local offset = tonumber(string.sub(seen, 1, first - 1))
    local epoch = string.sub(seen, first + 1, (second or 0) - 1)
    local fingerprint = second and string.sub(seen, second + 1) or ''
    if fingerprint ~= ARGV[9] then return {epoch, offset, 2} end
    -- A write (the key's own expiry, unchanged), so that a WAIT after this replay counts the
    -- replicas that hold the first publish too, not only this connection's older writes.
    local ttl = redis.call('PTTL', KEYS[4])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
    return {epoch, offset, 1}
  end
end
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local life = string.sub(info, at + 14, at + 53)
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'life')
local epoch = meta[1]
local lost = epoch and meta[2] and meta[2] ~= life
if lost then
  at = string.find(info, 'master_replid2:', 1, true)
  lost = string.sub(info, at + 15, at + 54) ~= meta[2]
end
if not epoch or lost then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0, 'life', life)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
elseif meta[2] ~= life then
  redis.call('HSET', KEYS[1], 'life', life)
end
if ARGV[1] == 'position' then
  -- A read is a use: it keeps the channel as long as a publish would (pods with subscribers
  -- read every position-check interval), and a channel only read lives one TTL, no more.
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))}
end
if ARGV[1] == 'rebase' then
  local colon = string.find(ARGV[3], ':', 1, true)
  local seen = tonumber(string.sub(ARGV[3], 1, colon - 1))
  local rest = string.sub(ARGV[3], colon + 1)
  local flag = string.find(rest, ':', 1, true)
  local seenEpoch = flag and string.sub(rest, 1, flag - 1) or rest
  local conflict = flag ~= nil
  local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
  if epoch ~= seenEpoch or (offset >= seen and not conflict) then return {epoch, offset} end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'offset', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
  return {ARGV[2], 0}
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local tag = string.sub(life, 1, 8)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset .. '-0', 'd', ARGV[3], 'l', tag)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call(ARGV[7], KEYS[3], epoch .. ':' .. offset .. ':' .. tag .. ':' .. ARGV[3])
if KEYS[4] then
  redis.call('SET', KEYS[4], offset .. ':' .. epoch .. ':' .. ARGV[9], 'NX', 'PX', ARGV[8])
end
return {epoch, offset}
`;

const SHA = createHash("sha1").update(PUBLISH_SCRIPT).digest("hex");

/** What the script needs from a client; both `Redis` and `Cluster` fit. */
export type ScriptClient = Pick<Redis, "evalsha" | "eval" | "pipeline">;

export interface ScriptCall {
  readonly mode: "publish" | "position" | "rebase";
  readonly keys: ChannelKeys;
  /** `publish` only: the Redis key that remembers this publish, for how long (ms), and what it carried. */
  readonly idempotency?:
    | { readonly key: string; readonly windowMs: number; readonly fingerprint: string }
    | undefined;
  readonly candidateEpoch: string;
  readonly data: string;
  readonly historySize: number;
  readonly historyTtlSeconds: number;
  readonly metaTtlSeconds: number;
  readonly sharded: boolean;
  /**
   * `publish` only: resolve only once this many replicas hold the publish (Redis `WAIT`, sent
   * with the script on the same connection), waiting at most `timeoutMs`; otherwise reject with
   * `ReplicationTimeout`. Absent or 0 replicas: the master's acknowledgement is enough.
   */
  readonly wait?: ReplicaWait | undefined;
}

/**
 * The script's answer: a position, and whether it is a remembered one (idempotent replay) —
 * for the same event, or (`conflict`) for another event under the same key.
 */
export interface ScriptReply extends StreamPosition {
  readonly duplicate: boolean;
  readonly conflict: boolean;
}

/** Runs the script by SHA and falls back to sending its source once Redis answers NOSCRIPT. */
export async function runPublishScript(
  client: ScriptClient,
  call: ScriptCall,
): Promise<ScriptReply> {
  const idempotency = call.mode === "publish" ? call.idempotency : undefined;
  const keys = [call.keys.meta, call.keys.history, call.keys.pubsub];
  if (idempotency) keys.push(idempotency.key);
  const args = [
    ...keys,
    call.mode,
    call.candidateEpoch,
    call.data,
    call.historySize,
    call.historyTtlSeconds,
    call.metaTtlSeconds,
    call.sharded ? "SPUBLISH" : "PUBLISH",
  ];
  if (idempotency) args.push(idempotency.windowMs, idempotency.fingerprint);
  const wait = call.mode === "publish" && (call.wait?.replicas ?? 0) > 0 ? call.wait : undefined;
  let reply: unknown;
  try {
    reply = wait
      ? await withWait(client, wait, (p) => p.evalsha(SHA, keys.length, ...args))
      : await client.evalsha(SHA, keys.length, ...args);
  } catch (error) {
    // NOSCRIPT means nothing ran, so sending the source is safe (no double publish).
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    reply = wait
      ? await withWait(client, wait, (p) => p.eval(PUBLISH_SCRIPT, keys.length, ...args))
      : await client.eval(PUBLISH_SCRIPT, keys.length, ...args);
  }
  return toReply(reply);
}

function toReply(reply: unknown): ScriptReply {
  if (
    Array.isArray(reply) &&
    (reply.length === 2 || (reply.length === 3 && (reply[2] === 1 || reply[2] === 2)))
  ) {
    const [epoch, offset, replay] = reply as unknown[];
    if (typeof epoch === "string" && typeof offset === "number" && Number.isSafeInteger(offset)) {
      return { epoch, offset, duplicate: replay !== undefined, conflict: replay === 2 };
    }
  }
  throw new Error(`unexpected reply from the publish script: ${JSON.stringify(reply)}`);
}
