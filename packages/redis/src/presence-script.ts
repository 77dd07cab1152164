/**
 * The Lua scripts of the Redis presence store (`lua/presence-*.lua`; key layout:
 * `presence-keys.ts`), how they are run, and how their replies are read.
 *
 * A transition's version is decided in the script that decides the transition: the channel's
 * last version + 1, or Redis's clock in µs when that is greater. So versions grow within a
 * channel, and keep growing across a lost counter (expired after ten quiet minutes, or writes lost to
 * a failover: the clock has moved on past what was handed out). Versions cross the wire as
 * decimal strings (Lua numbers would lose digits in `tostring`).
 */
import type { ChannelName } from "@realtime/protocol";
import type { PresenceSnapshot, PresenceTransition, PresenceUser } from "@realtime/server";
import type { Cluster, Redis } from "ioredis";
import { readLua, type Script, script } from "./lua.ts";
import { type ReplicaWait, withWait } from "./replication.ts";

/** The wrapper of {@link replayable} (`__BODY__`: the script; `__REPLY_TTL_MS__`). */
const REPLAYABLE = readLua("presence-replayable.lua");

/**
 * Makes a script that decides transitions safe to retry: its rows are kept for a minute under
 * the reply key (the last of KEYS, unique per call), and a retry of the call gets them back
 * instead of running again. A call that decided nothing needs no record: running it again
 * decides nothing either, since every step is idempotent (joins and leaves per stream, grace
 * periods per token, a reaped pod's hash is gone).
 */
function replayable(body: string): string {
  return REPLAYABLE.replace("__REPLY_TTL_MS__", String(REPLY_TTL_MS)).replace(
    "__BODY__",
    () => body,
  );
}

/** How long the rows of a decision are kept for a retry of the same call, in ms. */
export const REPLY_TTL_MS = 60_000;

/**
 * How long a channel's version counter outlives its last transition by default, in ms: as long
 * as an unused channel's epoch (the broker's meta TTL). Past it the clock alone orders
 * versions, which is safe once the channel was quiet this long; a stream open must not leave a
 * key for a day in every room it names.
 */
export const DEFAULT_VERSION_TTL_MS = 600_000;

/** Stands for the version TTL in the script sources until {@link presenceScripts} fills it in. */
const VERSION_TTL = "__VERSION_TTL_MS__";

/** The next version of the channel whose counter is KEYS[VERSION_KEY] (see the header). */
const VERSION = readLua("presence-version.lua");

/**
 * KEYS users, names, grace, pod, version, reply. ARGV deadline, token base, then the ops
 * `j sid uid name` | `l sid`. Returns `{'online', uid, name, version}` and
 * `{'grace', uid, token}`.
 */
const APPLY = replayable(VERSION + readLua("presence-apply.lua"));

/**
 * Shared by SETTLE and REAP: removes a user with no connection and no grace period. KEYS users,
 * names, grace first; `ver` is the version counter.
 */
const DROP = VERSION + readLua("presence-drop.lua");

/**
 * KEYS users, names, grace, version, reply. ARGV pairs: uid, "<deadline>:<token>". Returns
 * offlines.
 */
const SETTLE = replayable(DROP + readLua("presence-settle.lua"));

/**
 * KEYS users, names, grace, the reaped pod's hash, version, reply. ARGV the reaped pod's id,
 * token base, and (optional) a grace deadline. Takes the pod's grace periods over (new tokens
 * from the base), then removes its connections: a user left with none goes offline — or,
 * with a deadline (a pod reaping its own entries after Redis came back from disk, which it
 * joins again at once), enters a grace period that its rejoin cancels. Returns `offline` rows
 * and `{'grace', uid, token, deadline}`.
 */
const REAP = replayable(DROP + readLua("presence-reap.lua"));

/**
 * KEYS pods, reaped, this pod's index, lives. ARGV now, pod id, number of channels to add, the
 * channels to add, then the channels to remove. A heartbeat (also when registering channels).
 * Returns {code, life, previous life}: code 1 when the pod was unknown (new, reaped, or data
 * lost) or flagged as reaped; 2 when the pod's entries were written by another life of Redis
 * (`lives`: pod → the `master_replid` of its last heartbeat): Redis restarted from its RDB or
 * AOF, whose entries may be older than what the pod removed since — a closed connection can be
 * back. A replica promoted by a failover (`master_replid2` is the recorded id) is the same
 * life. The script records what it found, so a reply that is lost loses the news: the pod
 * also compares the lives it is answered with itself (`master_replid`, `master_replid2`).
 */
const HEARTBEAT = readLua("presence-heartbeat.lua");

/**
 * KEYS pods, lock. ARGV now, dead-before (ms), lock until (ms), lock PX, pod id, max pods.
 * Takes or renews the reaper lock (`<until>:<pod>`; unless another pod holds it) and lists the
 * pods silent since dead-before. The holder keeps the role while it keeps renewing it.
 */
const REAP_START = readLua("presence-reap-start.lua");

/**
 * KEYS pods, reaped, the dead pod's index, lives. ARGV dead pod id, the channels reaped.
 * Forgets the pod (and its life) once its index is empty; otherwise flags it (it may be alive
 * and adding channels).
 */
const REAP_FINISH = readLua("presence-reap-finish.lua");

/** KEYS users, names, version. Returns {users hash, names hash, version} read atomically. */
const SNAPSHOT = readLua("presence-snapshot.lua");

/** The presence scripts, their version counters living `versionTtlMs` after a transition. */
export function presenceScripts(versionTtlMs: number = DEFAULT_VERSION_TTL_MS) {
  if (!Number.isSafeInteger(versionTtlMs) || versionTtlMs < 1) {
    throw new RangeError(`the version TTL must be a positive integer (ms), got ${versionTtlMs}`);
  }
  const withTtl = (source: string) => script(source.replaceAll(VERSION_TTL, String(versionTtlMs)));
  return {
    apply: withTtl(APPLY),
    settle: withTtl(SETTLE),
    reap: withTtl(REAP),
    heartbeat: script(HEARTBEAT),
    reapStart: script(REAP_START),
    reapFinish: script(REAP_FINISH),
    snapshot: script(SNAPSHOT),
  } as const;
}

export type PresenceScriptSet = ReturnType<typeof presenceScripts>;

/**
 * Runs `script` by SHA and sends its source once Redis answers NOSCRIPT (nothing ran then).
 * With `wait`, resolves only once that many replicas hold what it wrote (else rejects with a
 * `ReplicationTimeout`).
 */
export async function runScript(
  client: Redis | Cluster,
  script: Script,
  keys: readonly string[],
  args: readonly (string | number)[],
  wait?: ReplicaWait,
): Promise<unknown> {
  try {
    return wait
      ? await withWait(client, wait, (p) => p.evalsha(script.sha, keys.length, ...keys, ...args))
      : await client.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    return wait
      ? withWait(client, wait, (p) => p.eval(script.source, keys.length, ...keys, ...args))
      : client.eval(script.source, keys.length, ...keys, ...args);
  }
}

/** Rows of a script reply (`{{'online', uid, name}, …}`), each checked to be strings. */
export function replyRows(reply: unknown): string[][] {
  if (!Array.isArray(reply)) throw new Error(`unexpected presence script reply: ${typeof reply}`);
  return reply.map((row) => {
    if (!Array.isArray(row) || !row.every((cell) => typeof cell === "string")) {
      throw new Error("unexpected presence script row");
    }
    return row as string[];
  });
}

/** The `online` and `offline` rows of a reply as transitions, in the reply's order. */
export function transitionsOf(
  channel: ChannelName,
  rows: readonly string[][],
): PresenceTransition[] {
  const transitions: PresenceTransition[] = [];
  for (const [status, userId = "", userName = "", version = ""] of rows) {
    if (status !== "online" && status !== "offline") continue;
    transitions.push({ channel, userId, userName, status, version: parseVersion(version) });
  }
  return transitions;
}

function parseVersion(text: string): number {
  const version = Number(text);
  if (!Number.isSafeInteger(version)) throw new Error(`unexpected presence version "${text}"`);
  return version;
}

/** The SNAPSHOT reply: users sorted by id (users in grace have 0 connections), and the version. */
export function snapshotOf(reply: unknown): PresenceSnapshot {
  const [counts = [], names = [], version = "0"] = Array.isArray(reply)
    ? (reply as [string[], string[], string])
    : [];
  const nameOf = new Map<string, string>();
  for (let i = 0; i + 1 < names.length; i += 2) nameOf.set(names[i] ?? "", names[i + 1] ?? "");
  const users: PresenceUser[] = [];
  for (let i = 0; i + 1 < counts.length; i += 2) {
    const userId = counts[i] ?? "";
    const connections = Math.max(0, Number(counts[i + 1]));
    users.push({ userId, userName: nameOf.get(userId) ?? userId, connections });
  }
  users.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  return { users, version: parseVersion(version) };
}
