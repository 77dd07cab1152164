/**
 * Presence in process memory, for embedded mode (one pod) and for tests, where several
 * {@link MemoryPresenceStore}s ("pods") share one {@link MemoryPresenceBackend}. It follows
 * the same rules, step for step, as the Lua scripts of the Redis store; the shared contract
 * suite keeps the two in agreement. No I/O: every call completes synchronously.
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
} from "./presence-store.ts";

interface GraceEntry {
  readonly deadline: number;
  readonly token: string;
}

interface ChannelPresence {
  /** User → open connections (0 while in grace). */
  readonly users: Map<string, number>;
  readonly names: Map<string, string>;
  readonly grace: Map<string, GraceEntry>;
  /** Pod → stream → user. */
  readonly pods: Map<string, Map<string, string>>;
}

/** The pod that owns a grace token (`<podId>.<n>.<i>`). */
export function graceOwner(token: string): string {
  const dot = token.indexOf(".");
  return dot < 0 ? token : token.slice(0, dot);
}

/** A new pod id: 10 characters of [0-9a-z] (no `.` or `:`, which tokens and keys use). */
export function newPodId(): string {
  let id = "";
  while (id.length < 10) id += Math.random().toString(36).slice(2);
  return id.slice(0, 10);
}

/** The shared state of every pod of one process (the in-memory "Redis"). */
export class MemoryPresenceBackend {
  readonly #channels = new Map<ChannelName, ChannelPresence>();
  /** Pod → last heartbeat. */
  readonly #pods = new Map<string, number>();
  /** Pod → channels where it has connections or grace periods (what a reaper must visit). */
  readonly #index = new Map<string, Set<ChannelName>>();
  /** Pods whose entries were reaped while they may still be alive. */
  readonly #reaped = new Set<string>();
  /** Set by `apply` when it registered the pod (unknown until then, or reaped). */
  #registered = false;
  /**
   * The last transition's version, for every channel at once (one process decides them all):
   * the last + 1, or the clock in µs when that is greater, so a new backend (a restarted
   * process) continues above what an earlier one handed out.
   */
  #version = 0;

  #nextVersion(): number {
    this.#version = Math.max(this.#version + 1, Date.now() * 1000);
    return this.#version;
  }

  /** Registers a heartbeat; true when the pod was unknown or had been reaped. */
  heartbeat(pod: string, at: number): boolean {
    const added = !this.#pods.has(pod);
    this.#pods.set(pod, at);
    return this.#reaped.delete(pod) || added;
  }

  apply(
    pod: string,
    changes: readonly PresenceChange[],
    now: number,
    graceMs: number,
    tokenBase: string,
  ): PresenceApplyResult & { registered: boolean } {
    this.#registered = false;
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    let n = 0;
    for (const change of changes) {
      if (change.kind === "join") {
        const transition = this.#join(pod, change, now);
        if (transition) transitions.push(transition);
        continue;
      }
      const state = this.#channels.get(change.channel);
      const mine = state?.pods.get(pod);
      const userId = mine?.get(change.streamId);
      if (!state || !mine || userId === undefined) continue;
      mine.delete(change.streamId);
      if (mine.size === 0) state.pods.delete(pod);
      const count = (state.users.get(userId) ?? 0) - 1;
      state.users.set(userId, count);
      if (count <= 0) {
        const grace = { deadline: now + graceMs, token: `${tokenBase}.${++n}` };
        state.grace.set(userId, grace);
        graces.push({ channel: change.channel, userId, ...grace });
      }
      this.#tidy(pod, change.channel, state);
    }
    return { transitions, graces, registered: this.#registered };
  }

  #join(
    pod: string,
    change: Extract<PresenceChange, { kind: "join" }>,
    now: number,
  ): PresenceTransition | null {
    const state = this.#channel(change.channel);
    let mine = state.pods.get(pod);
    if (!mine) {
      mine = new Map();
      state.pods.set(pod, mine);
    }
    this.#indexAdd(pod, change.channel);
    if (!this.#pods.has(pod)) {
      this.#pods.set(pod, now);
      this.#registered = true;
    }
    if (mine.has(change.streamId)) return null;
    mine.set(change.streamId, change.userId);
    const count = (state.users.get(change.userId) ?? 0) + 1;
    state.users.set(change.userId, count);
    state.names.set(change.userId, change.userName);
    if (count !== 1 || state.grace.delete(change.userId)) return null;
    return {
      channel: change.channel,
      userId: change.userId,
      userName: change.userName,
      status: "online",
      version: this.#nextVersion(),
    };
  }

  settle(pod: string, graces: readonly PresenceGrace[]): PresenceTransition[] {
    const transitions: PresenceTransition[] = [];
    for (const grace of graces) {
      const state = this.#channels.get(grace.channel);
      if (state?.grace.get(grace.userId)?.token === grace.token) {
        state.grace.delete(grace.userId);
        const gone = this.#dropIfAbsent(grace.channel, state, grace.userId);
        if (gone) transitions.push(gone);
      }
      if (state) this.#tidy(pod, grace.channel, state);
    }
    return transitions;
  }

  reap(self: string, now: number, ttlMs: number, tokenBase: string): PresenceReapResult {
    const transitions: PresenceTransition[] = [];
    const graces: PresenceGrace[] = [];
    let n = 0;
    for (const [pod, beat] of [...this.#pods]) {
      if (pod === self || beat >= now - ttlMs) continue;
      for (const channel of this.#index.get(pod) ?? []) {
        const state = this.#channel(channel);
        for (const userId of state.pods.get(pod)?.values() ?? []) {
          const count = (state.users.get(userId) ?? 0) - 1;
          state.users.set(userId, count);
          const gone = count <= 0 ? this.#dropIfAbsent(channel, state, userId) : null;
          if (gone) transitions.push(gone);
        }
        state.pods.delete(pod);
        for (const [userId, grace] of state.grace) {
          if (graceOwner(grace.token) !== pod) continue;
          const adopted = { deadline: grace.deadline, token: `${tokenBase}.${++n}` };
          state.grace.set(userId, adopted);
          graces.push({ channel, userId, ...adopted });
          this.#indexAdd(self, channel);
        }
        this.#tidy(self, channel, state);
      }
      this.#index.delete(pod);
      this.#pods.delete(pod);
      // A pod that comes back after this learns it from its next heartbeat (it is unknown).
    }
    return { transitions, graces };
  }

  retire(pod: string, at: number): void {
    if (this.#pods.has(pod)) this.#pods.set(pod, at);
  }

  snapshot(channel: ChannelName): PresenceSnapshot {
    const version = this.#version;
    const state = this.#channels.get(channel);
    if (!state) return { users: [], version };
    const users = [...state.users]
      .map(([userId, connections]) => ({
        userId,
        userName: state.names.get(userId) ?? userId,
        connections: Math.max(0, connections),
      }))
      .sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
    return { users, version };
  }

  /** Removes a user without connections (and not in grace): their `offline`. */
  #dropIfAbsent(
    channel: ChannelName,
    state: ChannelPresence,
    userId: string,
  ): PresenceTransition | null {
    if ((state.users.get(userId) ?? 0) > 0 || state.grace.has(userId)) return null;
    const userName = state.names.get(userId) ?? userId;
    state.users.delete(userId);
    state.names.delete(userId);
    if (state.users.size === 0 && state.pods.size === 0) this.#channels.delete(channel);
    return { channel, userId, userName, status: "offline", version: this.#nextVersion() };
  }

  /** Drops `channel` from the pod's index once the pod has nothing left there. */
  #tidy(pod: string, channel: ChannelName, state: ChannelPresence): void {
    if (state.pods.has(pod)) return;
    for (const grace of state.grace.values()) if (graceOwner(grace.token) === pod) return;
    this.#index.get(pod)?.delete(channel);
  }

  #indexAdd(pod: string, channel: ChannelName): void {
    let channels = this.#index.get(pod);
    if (!channels) {
      channels = new Set();
      this.#index.set(pod, channels);
    }
    channels.add(channel);
  }

  #channel(channel: ChannelName): ChannelPresence {
    let state = this.#channels.get(channel);
    if (!state) {
      state = { users: new Map(), names: new Map(), grace: new Map(), pods: new Map() };
      this.#channels.set(channel, state);
    }
    return state;
  }
}

export interface MemoryPresenceStoreOptions extends Partial<PresenceTimings> {
  /** The backend to share with other pods. Default: one of its own. */
  backend?: MemoryPresenceBackend;
  /** Default: random. */
  podId?: string;
}

export class MemoryPresenceStore implements PresenceStore {
  readonly podId: string;
  readonly backend: MemoryPresenceBackend;
  readonly #timings: PresenceTimings;
  /** This pod wrote to the backend before (a new pod is never "lost"). */
  #known = false;
  #lost = false;
  #calls = 0;

  constructor(options: MemoryPresenceStoreOptions = {}) {
    this.backend = options.backend ?? new MemoryPresenceBackend();
    this.podId = options.podId ?? newPodId();
    this.#timings = {
      graceMs: options.graceMs ?? DEFAULT_PRESENCE_TIMINGS.graceMs,
      ttlMs: options.ttlMs ?? DEFAULT_PRESENCE_TIMINGS.ttlMs,
    };
  }

  async heartbeat(now: number): Promise<{ lost: boolean }> {
    const changed = this.backend.heartbeat(this.podId, now);
    const lost = (changed || this.#lost) && this.#known;
    this.#known = true;
    this.#lost = false;
    return { lost };
  }

  async apply(changes: readonly PresenceChange[], now: number): Promise<PresenceApplyResult> {
    const { registered, ...result } = this.backend.apply(
      this.podId,
      changes,
      now,
      this.#timings.graceMs,
      this.#tokenBase(),
    );
    // A pod that was reaped learns it from its next heartbeat (as with Redis).
    if (registered && this.#known) this.#lost = true;
    if (changes.some((c) => c.kind === "join")) this.#known = true;
    return result;
  }

  async settle(graces: readonly PresenceGrace[]): Promise<PresenceTransition[]> {
    return this.backend.settle(this.podId, graces);
  }

  async reap(now: number): Promise<PresenceReapResult> {
    return this.backend.reap(this.podId, now, this.#timings.ttlMs, this.#tokenBase());
  }

  async snapshot(channel: ChannelName): Promise<PresenceSnapshot> {
    return this.backend.snapshot(channel);
  }

  async retire(now: number): Promise<void> {
    this.backend.retire(this.podId, now + this.#timings.graceMs - this.#timings.ttlMs);
  }

  async close(): Promise<void> {}

  #tokenBase(): string {
    return `${this.podId}.${++this.#calls}`;
  }
}
