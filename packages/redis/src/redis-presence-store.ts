/**
 * Presence in Redis, shared by every pod (key layout: `presence-keys.ts`; scripts:
 * `presence-script.ts`, `lua/presence-*.lua`).
 *
 * Cost, by design: joins and leaves cost one script call per channel per batch (the caller
 * batches them); upkeep costs one heartbeat per pod per interval, whatever the number of
 * connections, plus one lock attempt per pod per interval for the reaper. Pod deaths and
 * grace periods cost work only when they happen.
 *
 * Decisions are safe to retry (see `replayable` in the scripts): when Redis does not answer,
 * `apply` and `settle` retry the same call until it does, so a transition that Redis decided
 * is never dropped because its reply was lost.
 */
import type { ChannelName } from "@realtime/protocol";
import {
  DEFAULT_PRESENCE_TIMINGS,
  type PresenceApplyResult,
  type PresenceChange,
  type PresenceGrace,
  type PresenceReapResult,
  type PresenceSnapshot,
  type PresenceStore,
  type PresenceTimings,
  type PresenceTransition,
} from "@realtime/server";
import { Cluster, Redis } from "ioredis";
import { watchConnection } from "./connection-watchdog.ts";
import type { Script } from "./lua.ts";
import { PresenceIndex } from "./presence-index.ts";
import {
  type ChannelPresenceKeys,
  channelPresenceKeys,
  type PodRegistryKeys,
  podRegistryKeys,
} from "./presence-keys.ts";
import {
  type PresenceScriptSet,
  presenceScripts,
  replyRows,
  runScript,
  snapshotOf,
  transitionsOf,
} from "./presence-script.ts";
import { closeClient, reconnectDelay, waitForEvent } from "./pubsub-transport.ts";
import { type ReplicaWait, replicaWait } from "./replication.ts";

export interface RedisPresenceStoreOptions extends Partial<PresenceTimings> {
  /** Standalone Redis URL. Default `redis://127.0.0.1:6379`. Ignored with `clusterNodes`. */
  url?: string;
  /** Seed nodes of a Redis Cluster. */
  clusterNodes?: readonly { host: string; port: number }[];
  /** Prefix of every key. Default `realtime` (the broker's). */
  prefix?: string;
  /** This pod's id: `[0-9a-z_-]`. Default: random. */
  podId?: string;
  /** Longest wait for a Redis command, in ms. Default 2000. */
  commandTimeoutMs?: number;
  /** How long one pod keeps the reaper role, in ms. Default 2000. */
  reapLockMs?: number;
  /**
   * Replicas that must hold each presence change and heartbeat before it counts (Redis
   * `WAIT`), and how long to wait for them (ms), as the broker's `waitReplicas`. Default 0.
   * A change no replica took in time is tried again; an unanswered heartbeat makes the next one
   * join this pod's connections again.
   */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  /** Most dead pods one `reap` call handles. Default 8. */
  maxPodsPerReap?: number;
  /**
   * How long a channel's presence version counter outlives its last transition, in ms. Keep it
   * equal to the broker's meta TTL (the channel's idle TTL). Default 600000.
   */
  versionTtlMs?: number;
  /** Default: silent. */
  logger?: { warn(message: string): void };
}

/** ioredis's errors for a command it never wrote to Redis (the connection was not writable). */
const NOT_SENT = /isn't writeable|enableOfflineQueue/;

/** Most ops (or channels) sent in one script call, to keep argument lists bounded. */
const CHUNK = 256;
const POD_ID = /^[0-9a-z_-]{1,64}$/;

function newPodId(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

function chunked<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function byChannel<T extends { channel: ChannelName }>(items: readonly T[]): Map<ChannelName, T[]> {
  const groups = new Map<ChannelName, T[]>();
  for (const item of items) {
    const group = groups.get(item.channel);
    if (group) group.push(item);
    else groups.set(item.channel, [item]);
  }
  return groups;
}

export class RedisPresenceStore implements PresenceStore {
  readonly podId: string;
  readonly #client: Redis | Cluster;
  readonly #unwatch: () => void;
  readonly #prefix: string;
  readonly #registry: PodRegistryKeys;
  readonly #timings: PresenceTimings;
  readonly #commandTimeoutMs: number;
  readonly #reapLockMs: number;
  readonly #wait: ReplicaWait | undefined;
  readonly #maxPodsPerReap: number;
  readonly #logger: { warn(message: string): void };
  readonly #index = new PresenceIndex();
  readonly #scripts: PresenceScriptSet;
  #known = false;
  #lost = false;
  /** A beat found this pod's entries written by another life of Redis (see HEARTBEAT). */
  #wentBack = false;
  /**
   * The Redis life of the last answered beat, and when (this pod's clock) it was sent: a beat
   * Redis ran but whose answer was lost (Redis frozen past the command timeout, a cut link)
   * recorded the news in Redis, so the next beat there hears nothing — this pod compares for
   * itself (found by `npm run chaos`, seed 1305: a connection an RDB brought back, never reaped).
   */
  #life: string | null = null;
  /** A beat may have run in Redis without its answer reaching this pod (see {@link heartbeat}). */
  #unanswered = false;
  /** What this pod reaped of its own entries, until a heartbeat reports it. */
  #reaped: { graces: PresenceGrace[]; transitions: PresenceTransition[] } = {
    graces: [],
    transitions: [],
  };
  #calls = 0;
  #closed = false;
  #errorLogged = false;

  constructor(options: RedisPresenceStoreOptions = {}) {
    this.#scripts = presenceScripts(options.versionTtlMs);
    this.podId = options.podId ?? newPodId();
    if (!POD_ID.test(this.podId)) throw new TypeError(`invalid pod id: ${this.podId}`);
    this.#prefix = options.prefix ?? "realtime";
    this.#registry = podRegistryKeys(this.#prefix);
    this.#timings = {
      graceMs: options.graceMs ?? DEFAULT_PRESENCE_TIMINGS.graceMs,
      ttlMs: options.ttlMs ?? DEFAULT_PRESENCE_TIMINGS.ttlMs,
    };
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 2_000;
    this.#reapLockMs = options.reapLockMs ?? 2_000;
    this.#wait = replicaWait(options.waitReplicas, options.waitTimeoutMs);
    this.#maxPodsPerReap = options.maxPodsPerReap ?? 8;
    this.#logger = options.logger ?? { warn() {} };
    const connectionName = `realtime-presence-${this.podId}`;
    // Nothing is queued while disconnected: calls fail fast and are retried by this store.
    this.#client =
      options.clusterNodes && options.clusterNodes.length > 0
        ? new Cluster([...options.clusterNodes], {
            enableOfflineQueue: false,
            clusterRetryStrategy: reconnectDelay,
            redisOptions: {
              connectionName,
              commandTimeout: this.#commandTimeoutMs,
              maxRetriesPerRequest: 1,
              autoResendUnfulfilledCommands: false,
            },
          })
        : new Redis(options.url ?? "redis://127.0.0.1:6379", {
            connectionName,
            enableOfflineQueue: false,
            commandTimeout: this.#commandTimeoutMs,
            maxRetriesPerRequest: 1,
            // This store retries on its own (scripts are replay-safe by call id); a resend of
            // a command from a dead connection would run it late, after newer ones.
            autoResendUnfulfilledCommands: false,
            retryStrategy: reconnectDelay,
          });
    this.#client.on("error", (error: Error) => this.#onError(error));
    // A partitioned connection would time every heartbeat out until the TTL reaps this pod.
    this.#unwatch = watchConnection(this.#client, {
      onStale: (reason) => this.#logger.warn(`presence: ${reason}`),
    });
    this.#client.on("ready", () => {
      this.#errorLogged = false;
    });
    // Redis may lose the index (and this pod's registration) while the connection is away:
    // what is written after it must register its channel again.
    this.#client.on("close", () => this.#index.forgetRegistrations());
  }

  async heartbeat(now: number): Promise<{ lost: boolean; reaped?: PresenceReapResult }> {
    const released = this.#index.release();
    // Taken now: a beat of this heartbeat that goes unanswered sets it again for the next.
    const unanswered = this.#unanswered;
    this.#unanswered = false;
    let changed: boolean;
    try {
      changed = await this.#beat(now, [], released);
    } catch (error) {
      if (unanswered) this.#unanswered = true; // still to be acted on
      throw error;
    }
    // Kept until reported: if what follows fails, the next heartbeat must still say so (this
    // beat re-registered the pod, so the next one would not see it unknown).
    if (changed && this.#known) this.#lost = true;
    // A beat whose answer was lost may have carried news Redis now keeps to itself: that the
    // pod was unknown (reaped meanwhile) — the beat registered it again. Assume it did (a reap
    // of its own entries and a rejoin, which cancels the grace periods, costs no one an
    // offline).
    if (unanswered && this.#known) this.#lost = true;
    const lost = this.#lost || this.#wentBack;
    if (lost) {
      // The store lost track of this pod (reaped while alive, Redis restarted empty, or back
      // from disk). Whatever entries of it Redis still has are of unknown age: an RDB can list
      // connections closed since the save, and joins written before the first heartbeat of a
      // new Redis life are in no index. Find them all (a SCAN: this is rare) and reap them,
      // users left without a connection entering a grace period: the rejoin cancels it for
      // those still connected here, the others go offline when it ends — no offline/online
      // flicker for anyone still here.
      const reaped = await this.#reapPod(
        this.podId,
        now,
        Math.floor(now + this.#timings.graceMs),
        await this.#channelsWithEntries(this.podId),
      );
      // Kept until reported too: the grace periods are decided in Redis already.
      this.#reaped.graces.push(...reaped.graces);
      this.#reaped.transitions.push(...reaped.transitions);
      // The reap forgot this pod (its index is empty now): register it again at once, so that
      // its rejoin is not taken for a second loss.
      await this.#beat(now, [], []);
      this.#index.clear();
      // The grace periods it owns now keep their channels in its index (a reaper must find
      // them if this pod dies before it settles them).
      const graces = this.#reaped.graces;
      for (const grace of graces) this.#index.graceStarted(grace.channel, grace.token);
      await this.#index.ensure(
        graces.map((grace) => grace.channel),
        (missing) => this.#register(now, missing),
      );
    }
    this.#wentBack = false;
    this.#known = true;
    this.#lost = false;
    const reaped = this.#reaped;
    if (reaped.graces.length === 0 && reaped.transitions.length === 0) return { lost };
    this.#reaped = { graces: [], transitions: [] };
    return { lost, reaped };
  }

  /** Channels where `pod` has a connection hash, found by SCAN on every master. */
  async #channelsWithEntries(pod: string): Promise<ChannelName[]> {
    const head = `${this.#prefix}:presence-pod:`;
    const tail = `:${pod}`;
    const pattern = `${head.replace(/[*?[\]\\]/g, "\\$&")}*${tail}`;
    const nodes = this.#client instanceof Cluster ? this.#client.nodes("master") : [this.#client];
    const channels = new Set<ChannelName>();
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1_000);
        cursor = next;
        for (const key of keys) {
          if (!key.startsWith(`${head}{`) || !key.endsWith(`}${tail}`)) continue;
          channels.add(key.slice(head.length + 1, -tail.length - 1) as ChannelName);
        }
      } while (cursor !== "0");
    }
    return [...channels];
  }

  async apply(changes: readonly PresenceChange[], now: number): Promise<PresenceApplyResult> {
    const call = this.#callId();
    const deadline = String(Math.floor(now + this.#timings.graceMs));
    const joined: ChannelName[] = [];
    for (const change of changes) {
      if (change.kind !== "join") continue;
      this.#index.joining(change.channel, change.streamId);
      joined.push(change.channel);
    }
    await this.#retrying("register channels", () =>
      this.#index.ensure(joined, (missing) => this.#register(now, missing)),
    );
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    await Promise.all(
      [...byChannel(changes)].map(async ([channel, group]) => {
        const keys = channelPresenceKeys(this.#prefix, channel);
        for (const [i, chunk] of chunked(group).entries()) {
          const id = `${call}.${i}`;
          const args = chunk.flatMap((c) =>
            c.kind === "join" ? ["j", c.streamId, c.userId, c.userName] : ["l", c.streamId],
          );
          const rows = await this.#decide(this.#scripts.apply, keys, id, [
            [keys.users, keys.names, keys.grace, keys.pod(this.podId), keys.version],
            [deadline, id, ...args],
          ]);
          for (const c of chunk) if (c.kind === "leave") this.#index.left(channel, c.streamId);
          transitions.push(...transitionsOf(channel, rows));
          for (const [kind, userId = "", token = ""] of rows) {
            if (kind !== "grace") continue;
            graces.push({ channel, userId, token, deadline: Number(deadline) });
            this.#index.graceStarted(channel, token);
          }
        }
      }),
    );
    return { transitions, graces };
  }

  async settle(graces: readonly PresenceGrace[]): Promise<PresenceTransition[]> {
    const call = this.#callId();
    const transitions: PresenceTransition[] = [];
    await Promise.all(
      [...byChannel(graces)].map(async ([channel, group]) => {
        const keys = channelPresenceKeys(this.#prefix, channel);
        for (const [i, chunk] of chunked(group).entries()) {
          const id = `${call}.${i}`;
          const args = chunk.flatMap((g) => [g.userId, `${g.deadline}:${g.token}`]);
          const rows = await this.#decide(this.#scripts.settle, keys, id, [
            [keys.users, keys.names, keys.grace, keys.version],
            args,
          ]);
          for (const g of chunk) this.#index.graceEnded(channel, g.token);
          transitions.push(...transitionsOf(channel, rows));
        }
      }),
    );
    return transitions;
  }

  async reap(now: number): Promise<PresenceReapResult> {
    await this.#ready();
    const dead = await runScript(
      this.#client,
      this.#scripts.reapStart,
      [this.#registry.pods, this.#registry.lock],
      [
        now,
        now - this.#timings.ttlMs,
        now + this.#reapLockMs,
        this.#reapLockMs,
        this.podId,
        this.#maxPodsPerReap,
      ],
    );
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    for (const pod of Array.isArray(dead) ? (dead as string[]) : []) {
      const result = await this.#reapPod(pod, now);
      transitions.push(...result.transitions);
      graces.push(...result.graces);
    }
    return { transitions, graces };
  }

  async snapshot(channel: ChannelName): Promise<PresenceSnapshot> {
    await this.#ready();
    const keys = channelPresenceKeys(this.#prefix, channel);
    const reply = await runScript(
      this.#client,
      this.#scripts.snapshot,
      [keys.users, keys.names, keys.version],
      [],
    );
    return snapshotOf(reply);
  }

  async retire(now: number): Promise<void> {
    await this.#ready();
    const at = now + this.#timings.graceMs - this.#timings.ttlMs;
    await this.#client.zadd(this.#registry.pods, "XX", at, this.podId);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch();
    await closeClient(this.#client);
  }

  /**
   * Reaps one dead pod: its channels (its index, and `alsoIn`), then its registry entry. With
   * `graceDeadline`, users left without a connection enter a grace period instead of going
   * offline (see REAP).
   */
  async #reapPod(
    pod: string,
    now: number,
    graceDeadline?: number,
    alsoIn: readonly ChannelName[] = [],
  ): Promise<PresenceReapResult> {
    const indexed = (await this.#client.smembers(this.#registry.index(pod))) as ChannelName[];
    const channels = [...new Set([...indexed, ...alsoIn])];
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    const done: ChannelName[] = [];
    const call = this.#callId();
    for (const channel of channels) this.#index.pin(channel);
    try {
      // The dead pod's grace periods become ours: index their channels first.
      await this.#index.ensure(channels, (missing) => this.#register(now, missing));
      await Promise.all(
        channels.map(async (channel, i) => {
          const keys = channelPresenceKeys(this.#prefix, channel);
          const id = `${call}.${i}`;
          const rows = await this.#decide(this.#scripts.reap, keys, id, [
            [keys.users, keys.names, keys.grace, keys.pod(pod), keys.version],
            graceDeadline === undefined ? [pod, id] : [pod, id, graceDeadline],
          ]);
          transitions.push(...transitionsOf(channel, rows));
          for (const [kind, userId = "", token = "", deadline = ""] of rows) {
            if (kind !== "grace") continue;
            graces.push({ channel, userId, token, deadline: Number(deadline) });
            this.#index.graceStarted(channel, token);
          }
          done.push(channel);
        }),
      );
    } finally {
      for (const channel of channels) this.#index.unpin(channel);
    }
    try {
      // Also with no channel: a pod with an empty index is forgotten.
      for (const chunk of done.length > 0 ? chunked(done, 1_000) : [[]]) {
        await runScript(
          this.#client,
          this.#scripts.reapFinish,
          [
            this.#registry.pods,
            this.#registry.reaped,
            this.#registry.index(pod),
            this.#registry.lives,
          ],
          [pod, ...chunk],
        );
      }
    } catch (error) {
      // What was decided is reported; the pod stays listed and the next round finishes it.
      this.#logger.warn(`presence: finishing the reap of pod ${pod} failed: ${message(error)}`);
    }
    return { transitions, graces };
  }

  /** Registers channels in this pod's index (a heartbeat too). */
  async #register(now: number, channels: readonly ChannelName[]): Promise<void> {
    if ((await this.#beat(now, channels, [])) && this.#known) this.#lost = true;
    this.#known = true;
  }

  /**
   * The heartbeat script; true when the pod was unknown or flagged as reaped (and
   * {@link #wentBack} set when Redis came back from disk since its last beat).
   */
  async #beat(
    now: number,
    adds: readonly ChannelName[],
    removes: readonly ChannelName[],
  ): Promise<boolean> {
    await this.#ready();
    const keys = [
      this.#registry.pods,
      this.#registry.reaped,
      this.#registry.index(this.podId),
      this.#registry.lives,
    ];
    let changed = false;
    const addChunks = chunked(adds, 1_000);
    const removeChunks = chunked(removes, 1_000);
    const rounds = Math.max(1, addChunks.length, removeChunks.length);
    for (let i = 0; i < rounds; i++) {
      const add = addChunks[i] ?? [];
      let reply: unknown;
      try {
        reply = await runScript(
          this.#client,
          this.#scripts.heartbeat,
          keys,
          [now, this.podId, add.length, ...add, ...(removeChunks[i] ?? [])],
          this.#wait,
        );
      } catch (error) {
        // Sent, or maybe sent: it may have run (a command never written cannot have).
        if (!NOT_SENT.test(message(error))) this.#unanswered = true;
        throw error;
      }
      const [code, life, previous] = heartbeatReply(reply);
      if (code === 1) changed = true;
      if (code === 2) this.#wentBack = true;
      // Another life than the last answer's, and not its promoted replica: back from disk or
      // empty, whether or not a beat whose answer was lost already told Redis so.
      if (this.#life !== null && life !== this.#life && previous !== this.#life) {
        this.#wentBack = true;
      }
      this.#life = life;
    }
    return changed;
  }

  /** Runs a deciding script until Redis answers; retries reuse the call id (see the scripts). */
  async #decide(
    script: Script,
    keys: ChannelPresenceKeys,
    callId: string,
    [scriptKeys, args]: [string[], (string | number)[]],
  ): Promise<string[][]> {
    return this.#retrying("presence script", async () => {
      await this.#ready();
      return replyRows(
        await runScript(
          this.#client,
          script,
          [...scriptKeys, keys.reply(callId)],
          args,
          this.#wait,
        ),
      );
    });
  }

  async #retrying<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let failures = 0; ; failures++) {
      if (this.#closed) throw new Error("presence store is closed");
      try {
        return await attempt();
      } catch (error) {
        if (this.#closed) throw error;
        if (failures === 0)
          this.#logger.warn(`presence: ${what} failed, retrying: ${message(error)}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** failures, 2_000)));
      }
    }
  }

  #ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("presence store is closed"));
    const client = this.#client;
    return waitForEvent(
      client,
      "ready",
      () => client.status === "ready",
      this.#commandTimeoutMs,
      "redis presence",
    );
  }

  #callId(): string {
    return `${this.podId}.${++this.#calls}`;
  }

  #onError(error: Error): void {
    if (this.#errorLogged || this.#closed) return;
    this.#errorLogged = true;
    this.#logger.warn(`presence: redis connection error: ${error.message}`);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The heartbeat script's `{code, life, previous life}`, checked. */
function heartbeatReply(reply: unknown): [number, string, string] {
  if (Array.isArray(reply) && reply.length === 3) {
    const [code, life, previous] = reply as unknown[];
    if (typeof code === "number" && typeof life === "string" && typeof previous === "string") {
      return [code, life, previous];
    }
  }
  throw new Error(`unexpected reply from the heartbeat script: ${JSON.stringify(reply)}`);
}
