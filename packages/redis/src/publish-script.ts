/**
 * The one Lua script behind `publish` and `position`: position assignment, history append and
 * live fan-out happen atomically on the channel's slot, so the live path can never carry an
 * event the history does not have, and offsets are contiguous per epoch.
 */
import type { StreamPosition } from "@realtime/protocol";
import type { Redis } from "ioredis";
import { readLua, script } from "./lua.ts";
import type { ChannelKeys } from "./redis-keys.ts";
import { type ReplicaWait, withWait } from "./replication.ts";

/**
 * `lua/publish.lua`. KEYS: 1 meta hash, 2 history stream, 3 pub/sub channel (declared so Cluster checks its slot),
 *       4 (optional, `publish` only) the idempotency key of this publish.
 * ARGV: 1 mode (`publish` | `position` | `rebase`), 2 candidate epoch, 3 data (for `rebase`:
 *       `<offset>:<epoch>`, a position a pod saw), 4 history MAXLEN, 5 history TTL s, 6 meta
 *       TTL s, 7 publish command (`PUBLISH` | `SPUBLISH`), 8 the live frame's trace (see
 *       `encodeTrace`; may be empty), 9 idempotency window ms and 10 the publish's fingerprint
 *       (both with KEYS[4]).
 *
 * The epoch is created when the meta hash is missing (never published, or expired/lost), from
 * the candidate the caller passed — by `position` too, so that the first publish stays in the
 * epoch a reader saw; the meta hash then lives one meta TTL (ARGV 6) from its last use, a
 * publish or a `position`, and a channel only read costs one small hash for that long; a new epoch starts an empty history, so any stale stream is
 * deleted. The stream entry id is `<offset>-0`, so history reads by offset are exact.
 * Frame: `<epoch>:<offset><trace>:<life>:<data>` (`parseFrame`); the history entry holds `d` (data) and `l` (life):
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
export const PUBLISH_SCRIPT = readLua("publish.lua");

const { sha: SHA } = script(PUBLISH_SCRIPT);

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
  /** `publish` only: the live frame's trace (`encodeTrace`), or empty. */
  readonly trace?: string | undefined;
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
    call.trace ?? "",
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
