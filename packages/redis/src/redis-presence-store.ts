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
import type { Script } from "./lua.ts";
import { PodHeartbeat } from "./pod-heartbeat.ts";
import { PresenceIndex } from "./presence-index.ts";
import {
  type ChannelPresenceKeys,
  channelPresenceKeys,
  type PodRegistryKeys,
  podRegistryKeys,
} from "./presence-keys.ts";
import { errorMessage, PresenceRedis } from "./presence-redis.ts";
import {
  type PresenceScriptSet,
  presenceScripts,
  runScript,
  snapshotOf,
  transitionsOf,
} from "./presence-script.ts";
import { chunks } from "./pubsub-transport.ts";
import { replicaWait } from "./replication.ts";

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

/** Most ops (or channels) sent in one script call, to keep argument lists bounded. */
const CHUNK = 256;
const POD_ID = /^[0-9a-z_-]{1,64}$/;

function newPodId(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
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
  readonly #redis: PresenceRedis;
  readonly #beats: PodHeartbeat;
  readonly #prefix: string;
  readonly #registry: PodRegistryKeys;
  readonly #timings: PresenceTimings;
  readonly #reapLockMs: number;
  readonly #maxPodsPerReap: number;
  readonly #logger: { warn(message: string): void };
  readonly #index = new PresenceIndex();
  readonly #scripts: PresenceScriptSet;
  #known = false;
  #lost = false;
  /** What this pod reaped of its own entries, until a heartbeat reports it. */
  #reaped: { graces: PresenceGrace[]; transitions: PresenceTransition[] } = {
    graces: [],
    transitions: [],
  };

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
    this.#reapLockMs = options.reapLockMs ?? 2_000;
    const wait = replicaWait(options.waitReplicas, options.waitTimeoutMs);
    this.#maxPodsPerReap = options.maxPodsPerReap ?? 8;
    this.#logger = options.logger ?? { warn() {} };
    this.#redis = new PresenceRedis({
      url: options.url,
      clusterNodes: options.clusterNodes,
      podId: this.podId,
      commandTimeoutMs: options.commandTimeoutMs ?? 2_000,
      wait,
      logger: this.#logger,
      // Redis may lose the index (and this pod's registration) while the connection is away:
      // what is written after it must register its channel again.
      onClose: () => this.#index.forgetRegistrations(),
    });
    this.#beats = new PodHeartbeat(
      this.#redis,
      this.#scripts.heartbeat,
      this.#registry,
      this.podId,
      wait,
    );
  }

  async heartbeat(now: number): Promise<{ lost: boolean; reaped?: PresenceReapResult }> {
    const released = this.#index.release();
    // Taken now: a beat of this heartbeat that goes unanswered sets it again for the next.
    const unanswered = this.#beats.takeUnanswered();
    let changed: boolean;
    try {
      changed = await this.#beats.beat(now, [], released);
    } catch (error) {
      if (unanswered) this.#beats.keepUnanswered(); // still to be acted on
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
    const lost = this.#lost || this.#beats.wentBack;
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
        await this.#redis.channelsWithEntries(this.#prefix, this.podId),
      );
      // Kept until reported too: the grace periods are decided in Redis already.
      this.#reaped.graces.push(...reaped.graces);
      this.#reaped.transitions.push(...reaped.transitions);
      // The reap forgot this pod (its index is empty now): register it again at once, so that
      // its rejoin is not taken for a second loss.
      await this.#beats.beat(now, [], []);
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
    this.#beats.settled();
    this.#known = true;
    this.#lost = false;
    const reaped = this.#reaped;
    if (reaped.graces.length === 0 && reaped.transitions.length === 0) return { lost };
    this.#reaped = { graces: [], transitions: [] };
    return { lost, reaped };
  }

  async apply(changes: readonly PresenceChange[], now: number): Promise<PresenceApplyResult> {
    const call = this.#redis.callId();
    const deadline = String(Math.floor(now + this.#timings.graceMs));
    const joined: ChannelName[] = [];
    for (const change of changes) {
      if (change.kind !== "join") continue;
      this.#index.joining(change.channel, change.streamId);
      joined.push(change.channel);
    }
    await this.#redis.retrying("register channels", () =>
      this.#index.ensure(joined, (missing) => this.#register(now, missing)),
    );
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    await Promise.all(
      [...byChannel(changes)].map(async ([channel, group]) => {
        const keys = channelPresenceKeys(this.#prefix, channel);
        for (const [i, chunk] of chunks(group, CHUNK).entries()) {
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
    const call = this.#redis.callId();
    const transitions: PresenceTransition[] = [];
    await Promise.all(
      [...byChannel(graces)].map(async ([channel, group]) => {
        const keys = channelPresenceKeys(this.#prefix, channel);
        for (const [i, chunk] of chunks(group, CHUNK).entries()) {
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
    const dead = await this.#redis.run(
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
    const keys = channelPresenceKeys(this.#prefix, channel);
    const reply = await this.#redis.run(
      this.#scripts.snapshot,
      [keys.users, keys.names, keys.version],
      [],
    );
    return snapshotOf(reply);
  }

  async retire(now: number): Promise<void> {
    await this.#redis.ready();
    const at = now + this.#timings.graceMs - this.#timings.ttlMs;
    await this.#redis.client.zadd(this.#registry.pods, "XX", at, this.podId);
  }

  async close(): Promise<void> {
    await this.#redis.close();
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
    const indexed = (await this.#redis.client.smembers(this.#registry.index(pod))) as ChannelName[];
    const channels = [...new Set([...indexed, ...alsoIn])];
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    const done: ChannelName[] = [];
    const call = this.#redis.callId();
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
      for (const chunk of done.length > 0 ? chunks(done, 1_000) : [[]]) {
        await runScript(
          this.#redis.client,
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
      this.#logger.warn(
        `presence: finishing the reap of pod ${pod} failed: ${errorMessage(error)}`,
      );
    }
    return { transitions, graces };
  }

  /** Registers channels in this pod's index (a heartbeat too). */
  async #register(now: number, channels: readonly ChannelName[]): Promise<void> {
    if ((await this.#beats.beat(now, channels, [])) && this.#known) this.#lost = true;
    this.#known = true;
  }

  /** Runs a deciding script until Redis answers; retries reuse the call id (see the scripts). */
  #decide(
    script: Script,
    keys: ChannelPresenceKeys,
    callId: string,
    call: [string[], (string | number)[]],
  ): Promise<string[][]> {
    return this.#redis.decide(script, keys.reply(callId), call);
  }
}
