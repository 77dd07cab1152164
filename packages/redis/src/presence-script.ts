/**
 * Key layout and Lua scripts of the Redis presence store. Every decision about a user's
 * transition runs in one script on the channel's hash-tagged slot, so two pods can never both
 * decide `online` (or `offline`) for one change; the pod registry and the per-pod channel
 * index share the `{presence}` slot.
 *
 *     <prefix>:presence-users:{channel:x}        hash userId → connections (0 while in grace)
 *     <prefix>:presence-names:{channel:x}        hash userId → display name
 *     <prefix>:presence-grace:{channel:x}        hash userId → "<deadline ms>:<token>"
 *     <prefix>:presence-pod:{channel:x}:<podId>  hash streamId → userId (one pod's connections)
 *     <prefix>:presence-reply:{channel:x}:<call> a decision's rows, for a retry (60 s)
 *     <prefix>:presence-version:{channel:x}      the version of the last transition (10 min)
 *     <prefix>:{presence}:pods                   zset podId → last heartbeat (ms)
 *     <prefix>:{presence}:index:<podId>          set of channels where the pod has entries
 *     <prefix>:{presence}:reaped                 set of pods reaped while maybe alive
 *     <prefix>:{presence}:reaper                 the reaper lock
 *     <prefix>:{presence}:lives                  hash podId → Redis life of its last heartbeat
 *
 * A grace token is `<podId>.<call>.<n>`: the pod that owns the grace period comes first.
 * Channel hashes empty themselves (Redis deletes empty hashes), so nothing needs a TTL.
 *
 * A transition's version is decided in the script that decides the transition: the channel's
 * last version + 1, or Redis's clock in µs when that is greater. So versions grow within a
 * channel, and keep growing across a lost counter (expired after ten quiet minutes, or writes lost to
 * a failover: the clock has moved on past what was handed out). Versions cross the wire as
 * decimal strings (Lua numbers would lose digits in `tostring`).
 */
import { createHash } from "node:crypto";
import type { ChannelName } from "@realtime/protocol";
import type { PresenceSnapshot, PresenceTransition, PresenceUser } from "@realtime/server";
import type { Cluster, Redis } from "ioredis";
import { type ReplicaWait, withWait } from "./replication.ts";

export interface ChannelPresenceKeys {
  readonly users: string;
  readonly names: string;
  readonly grace: string;
  /** The counter of the channel's transition versions. */
  readonly version: string;
  /** The hash of one pod's connections in the channel. */
  pod(podId: string): string;
  /** Where the rows of call `callId` are kept for its retries. */
  reply(callId: string): string;
}

export function channelPresenceKeys(prefix: string, channel: ChannelName): ChannelPresenceKeys {
  const tag = `{${channel}}`;
  return {
    users: `${prefix}:presence-users:${tag}`,
    names: `${prefix}:presence-names:${tag}`,
    grace: `${prefix}:presence-grace:${tag}`,
    version: `${prefix}:presence-version:${tag}`,
    pod: (podId) => `${prefix}:presence-pod:${tag}:${podId}`,
    reply: (callId) => `${prefix}:presence-reply:${tag}:${callId}`,
  };
}

export interface PodRegistryKeys {
  readonly pods: string;
  readonly reaped: string;
  readonly lock: string;
  /** Hash pod → the Redis life (`master_replid`) of its last heartbeat. */
  readonly lives: string;
  index(podId: string): string;
}

export function podRegistryKeys(prefix: string): PodRegistryKeys {
  return {
    pods: `${prefix}:{presence}:pods`,
    reaped: `${prefix}:{presence}:reaped`,
    lock: `${prefix}:{presence}:reaper`,
    lives: `${prefix}:{presence}:lives`,
    index: (podId) => `${prefix}:{presence}:index:${podId}`,
  };
}

/**
 * Makes a script that decides transitions safe to retry: its rows are kept for a minute under
 * the reply key (the last of KEYS, unique per call), and a retry of the call gets them back
 * instead of running again. A call that decided nothing needs no record: running it again
 * decides nothing either, since every step is idempotent (joins and leaves per stream, grace
 * periods per token, a reaped pod's hash is gone).
 */
function replayable(body: string): string {
  return `
local reply = KEYS[#KEYS]
local cached = redis.call('GET', reply)
if cached then return cjson.decode(cached) end
local function run()
${body}
end
local out = run()
if #out > 0 then redis.call('SET', reply, cjson.encode(out), 'PX', ${REPLY_TTL_MS}) end
return out
`;
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
const VERSION = `
local function next_version(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local v = tonumber(redis.call('GET', key) or '0') + 1
  if now > v then v = now end
  local text = string.format('%.0f', v)
  redis.call('SET', key, text, 'PX', ${VERSION_TTL})
  return text
end
`;

/**
 * KEYS users, names, grace, pod, version, reply. ARGV deadline, token base, then the ops
 * `j sid uid name` | `l sid`. Returns `{'online', uid, name, version}` and
 * `{'grace', uid, token}`.
 */
const APPLY = replayable(`${VERSION}
local users, names, grace, pod, ver = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deadline, base = ARGV[1], ARGV[2]
local out, n, i = {}, 0, 3
while i <= #ARGV do
  if ARGV[i] == 'j' then
    local sid, uid, name = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    if redis.call('HSETNX', pod, sid, uid) == 1 then
      redis.call('HSET', names, uid, name)
      if redis.call('HINCRBY', users, uid, 1) == 1 and redis.call('HDEL', grace, uid) == 0 then
        out[#out + 1] = {'online', uid, name, next_version(ver)}
      end
    end
  else
    local sid = ARGV[i + 1]
    i = i + 2
    local uid = redis.call('HGET', pod, sid)
    if uid then
      redis.call('HDEL', pod, sid)
      if redis.call('HINCRBY', users, uid, -1) <= 0 then
        n = n + 1
        local token = base .. '.' .. n
        redis.call('HSET', grace, uid, deadline .. ':' .. token)
        out[#out + 1] = {'grace', uid, token}
      end
    end
  end
end
return out
`);

/**
 * Shared by SETTLE and REAP: removes a user with no connection and no grace period. KEYS users,
 * names, grace first; `ver` is the version counter.
 */
const DROP = `${VERSION}
local function drop(out, uid, ver)
  if (tonumber(redis.call('HGET', KEYS[1], uid)) or 0) > 0 then return end
  if redis.call('HEXISTS', KEYS[3], uid) == 1 then return end
  local name = redis.call('HGET', KEYS[2], uid) or uid
  redis.call('HDEL', KEYS[1], uid)
  redis.call('HDEL', KEYS[2], uid)
  out[#out + 1] = {'offline', uid, name, next_version(ver)}
end
`;

/**
 * KEYS users, names, grace, version, reply. ARGV pairs: uid, "<deadline>:<token>". Returns
 * offlines.
 */
const SETTLE = replayable(`${DROP}
local out = {}
for i = 1, #ARGV, 2 do
  local uid = ARGV[i]
  if redis.call('HGET', KEYS[3], uid) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[3], uid)
    drop(out, uid, KEYS[4])
  end
end
return out
`);

/**
 * KEYS users, names, grace, the reaped pod's hash, version, reply. ARGV the reaped pod's id,
 * token base, and (optional) a grace deadline. Takes the pod's grace periods over (new tokens
 * from the base), then removes its connections: a user left with none goes offline — or,
 * with a deadline (a pod reaping its own entries after Redis came back from disk, which it
 * joins again at once), enters a grace period that its rejoin cancels. Returns `offline` rows
 * and `{'grace', uid, token, deadline}`.
 */
const REAP = replayable(`${DROP}
local out = {}
local owned = ARGV[1] .. '.'
local graces = redis.call('HGETALL', KEYS[3])
local n = 0
for i = 1, #graces, 2 do
  local value = graces[i + 1]
  local colon = string.find(value, ':', 1, true)
  if colon and string.sub(value, colon + 1, colon + #owned) == owned then
    n = n + 1
    local deadline = string.sub(value, 1, colon - 1)
    local token = ARGV[2] .. '.' .. n
    redis.call('HSET', KEYS[3], graces[i], deadline .. ':' .. token)
    out[#out + 1] = {'grace', graces[i], token, deadline}
  end
end
local entries = redis.call('HGETALL', KEYS[4])
for i = 2, #entries, 2 do
  local uid = entries[i]
  if redis.call('HINCRBY', KEYS[1], uid, -1) <= 0 then
    if ARGV[3] and redis.call('HEXISTS', KEYS[3], uid) == 0 then
      n = n + 1
      local token = ARGV[2] .. '.' .. n
      redis.call('HSET', KEYS[3], uid, ARGV[3] .. ':' .. token)
      out[#out + 1] = {'grace', uid, token, ARGV[3]}
    elseif not ARGV[3] then
      drop(out, uid, KEYS[5])
    end
  end
end
redis.call('DEL', KEYS[4])
return out
`);

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
const HEARTBEAT = `
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local life = string.sub(info, at + 14, at + 53)
at = string.find(info, 'master_replid2:', 1, true)
local previous = string.sub(info, at + 15, at + 54)
local was = redis.call('HGET', KEYS[4], ARGV[2])
local back = was and was ~= life and previous ~= was
if was ~= life then redis.call('HSET', KEYS[4], ARGV[2], life) end
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local flagged = redis.call('SREM', KEYS[2], ARGV[2])
local adds = tonumber(ARGV[3])
if adds > 0 then redis.call('SADD', KEYS[3], unpack(ARGV, 4, 3 + adds)) end
if #ARGV > 3 + adds then redis.call('SREM', KEYS[3], unpack(ARGV, 4 + adds, #ARGV)) end
local code = 0
if back and added == 0 then code = 2 elseif added + flagged > 0 then code = 1 end
return {code, life, previous}
`;

/**
 * KEYS pods, lock. ARGV now, dead-before (ms), lock until (ms), lock PX, pod id, max pods.
 * Takes or renews the reaper lock (`<until>:<pod>`; unless another pod holds it) and lists the
 * pods silent since dead-before. The holder keeps the role while it keeps renewing it.
 */
const REAP_START = `
local lock = redis.call('GET', KEYS[2])
if lock then
  local colon = string.find(lock, ':', 1, true)
  local held = tonumber(string.sub(lock, 1, colon - 1))
  if string.sub(lock, colon + 1) ~= ARGV[5] and held > tonumber(ARGV[1]) then return {} end
end
redis.call('SET', KEYS[2], ARGV[3] .. ':' .. ARGV[5], 'PX', ARGV[4])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[6])
local out = {}
for _, pod in ipairs(dead) do
  if pod ~= ARGV[5] then out[#out + 1] = pod end
end
return out
`;

/**
 * KEYS pods, reaped, the dead pod's index, lives. ARGV dead pod id, the channels reaped.
 * Forgets the pod (and its life) once its index is empty; otherwise flags it (it may be alive
 * and adding channels).
 */
const REAP_FINISH = `
if #ARGV > 1 then redis.call('SREM', KEYS[3], unpack(ARGV, 2)) end
if redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  return 0
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`;

/** KEYS users, names, version. Returns {users hash, names hash, version} read atomically. */
const SNAPSHOT = `
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('GET', KEYS[3]) or '0'}
`;

export interface Script {
  readonly source: string;
  readonly sha: string;
}

function script(source: string): Script {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}

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
