/**
 * Presence for one pod: watches the hub's streams, records them in the {@link PresenceStore}
 * and publishes the transitions the store decides as `presence` events — through
 * `hub.publish`, so they take the broker path like every event: one order per channel,
 * offsets, history, and replay to a client that reconnects with its cursor.
 *
 * Work is batched: joins and leaves that happen together go to the store in one call; one
 * timer per pod settles due grace periods, and every `refreshMs` sends the pod's heartbeat and
 * lets the store reap dead pods. Nothing here runs per connection on a timer.
 */
import { type ChannelName, EventType } from "@realtime/protocol";
import type { Hub } from "./hub.ts";
import {
  hasPresence,
  type PresenceChange,
  type PresenceGrace,
  type PresenceSnapshot,
  type PresenceStatus,
  type PresenceStore,
  type PresenceTransition,
} from "./presence-store.ts";
import type { SseStream } from "./sse-stream.ts";

/** What presence counts; the service exposes it (Prometheus). Must be cheap and never throw. */
export interface PresenceMetrics {
  /** This pod published a presence event. */
  presenceEvent(status: PresenceStatus): void;
}

export interface PresenceOptions {
  hub: Hub;
  store: PresenceStore;
  /**
   * Interval of the pod's heartbeat and of its reaper attempts, in ms. Keep it well below the
   * store's TTL (a third or less), so one missed heartbeat does not get a live pod reaped.
   * Default 3000.
   */
  refreshMs?: number;
  /** How often due grace periods are settled, in ms: `offline` comes this much late at most. Default 250. */
  tickMs?: number;
  /** How long a failed publish of a presence event is retried, in ms. Default 30000. */
  publishRetryMs?: number;
  /** Longest wait in {@link Presence.stop} for queued work, in ms. Default 3000. */
  stopTimeoutMs?: number;
  /** Clock. Default: the hub's. */
  now?: () => number;
  /** false: no timer; the owner calls {@link Presence.tick} (tests). Default true. */
  timers?: boolean;
  metrics?: PresenceMetrics;
  /** Default: silent. */
  logger?: { warn(message: string): void };
}

export class Presence {
  readonly #hub: Hub;
  readonly #store: PresenceStore;
  readonly #refreshMs: number;
  readonly #publishRetryMs: number;
  readonly #stopTimeoutMs: number;
  readonly #now: () => number;
  readonly #metrics: PresenceMetrics | undefined;
  readonly #logger: { warn(message: string): void };
  readonly #timer: NodeJS.Timeout | undefined;
  /** Local streams with presence → the channels they joined. */
  readonly #joined = new Map<SseStream, ChannelName[]>();
  /** User → local streams with presence (the users-online gauge). */
  readonly #users = new Map<string, number>();
  /** Grace periods this pod owns, roughly by deadline. */
  #graces: PresenceGrace[] = [];
  #queue: PresenceChange[] = [];
  #flushing: Promise<void> | null = null;
  #settling: Promise<void> | null = null;
  #upkeep: Promise<void> | null = null;
  readonly #publishes = new Set<Promise<void>>();
  #lastBeat = Number.NEGATIVE_INFINITY;
  /** Since when heartbeats succeed without a failure (reaping waits for a steady state). */
  #healthySince: number | null = null;
  #stopped = false;

  constructor(options: PresenceOptions) {
    this.#hub = options.hub;
    this.#store = options.store;
    this.#refreshMs = options.refreshMs ?? 3_000;
    this.#publishRetryMs = options.publishRetryMs ?? 30_000;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 3_000;
    this.#now = options.now ?? (() => this.#hub.now());
    this.#metrics = options.metrics;
    this.#logger = options.logger ?? { warn() {} };
    this.#hub.onStream({ opened: (s) => this.#opened(s), closed: (s) => this.#closed(s) });
    if (options.timers ?? true) {
      this.#timer = setInterval(() => void this.tick(), options.tickMs ?? 250);
      this.#timer.unref();
    }
  }

  /** Distinct users with at least one presence-tracked stream on this pod. */
  get usersOnline(): number {
    return this.#users.size;
  }

  /** Grace periods this pod owns and has not settled yet. */
  get pendingGraces(): number {
    return this.#graces.length;
  }

  /** Who is online in `channel`, over every pod (see {@link PresenceStore.snapshot}). */
  snapshot(channel: ChannelName): Promise<PresenceSnapshot> {
    return this.#store.snapshot(channel);
  }

  /**
   * Settles due grace periods; every `refreshMs`, sends the heartbeat and reaps dead pods.
   * Runs on the timer; public so tests can drive it with their own clock.
   */
  async tick(): Promise<void> {
    if (this.#stopped) return;
    const now = this.#now();
    this.#settling ??= this.#settleDue(now).finally(() => {
      this.#settling = null;
    });
    if (now - this.#lastBeat >= this.#refreshMs) {
      this.#upkeep ??= this.#beatAndReap(now).finally(() => {
        this.#upkeep = null;
      });
    }
    await Promise.all([this.#settling, this.#upkeep]);
  }

  /** Resolves once every queued change is in the store and every event published so far is out. */
  async flush(): Promise<void> {
    while (this.#flushing || this.#settling || this.#upkeep || this.#publishes.size > 0) {
      await Promise.all([this.#flushing, this.#settling, this.#upkeep, ...this.#publishes]);
    }
  }

  /**
   * Graceful stop, called before the hub drains: from the moment it is called, stream closes
   * are no longer recorded; instead the store reaps this pod one grace period from now (from
   * another pod), so clients that reconnect elsewhere meanwhile cause no events and the others
   * get their `offline` then. Waits at most `stopTimeoutMs` for queued work.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    // Bounded: with the backend down, the store would retry until it is closed.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#stopTimeoutMs);
    });
    await Promise.race([this.flush(), timeout]);
    clearTimeout(timer);
    try {
      await this.#store.retire(this.#now());
    } catch (error) {
      this.#logger.warn(`presence: retiring this pod failed: ${message(error)}`);
    }
  }

  #opened(stream: SseStream): void {
    // A peer that left while its stream was starting may be reported closed before opened.
    if (this.#stopped || stream.ended || !stream.connection || stream.connection.closed) return;
    const channels = stream.channels.filter(hasPresence);
    if (channels.length === 0) return;
    this.#joined.set(stream, channels);
    this.#users.set(stream.userId, (this.#users.get(stream.userId) ?? 0) + 1);
    this.#enqueue(channels.map((channel) => joinOf(stream, channel)));
  }

  #closed(stream: SseStream): void {
    const channels = this.#joined.get(stream);
    if (!channels) return;
    this.#joined.delete(stream);
    const left = (this.#users.get(stream.userId) ?? 1) - 1;
    if (left > 0) this.#users.set(stream.userId, left);
    else this.#users.delete(stream.userId);
    if (this.#stopped) return; // handed over: see stop()
    const streamId = String(stream.id);
    this.#enqueue(channels.map((channel) => ({ kind: "leave", channel, streamId }) as const));
  }

  #enqueue(changes: PresenceChange[]): void {
    this.#queue.push(...changes);
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = null;
    });
  }

  /** Applies the queue in batches, one store call at a time, so changes keep their order. */
  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      // Let the rest of this turn's opens and closes join the batch.
      await new Promise((resolve) => setImmediate(resolve));
      const batch = this.#queue;
      this.#queue = [];
      try {
        const result = await this.#store.apply(batch, this.#now());
        this.#graces.push(...result.graces);
        this.#emit(result.transitions);
      } catch (error) {
        this.#logger.warn(`presence: applying ${batch.length} changes failed: ${message(error)}`);
      }
    }
  }

  async #settleDue(now: number): Promise<void> {
    if (this.#graces.length === 0) return;
    const due = this.#graces.filter((g) => g.deadline <= now);
    if (due.length === 0) return;
    this.#graces = this.#graces.filter((g) => g.deadline > now);
    try {
      this.#emit(await this.#store.settle(due));
    } catch (error) {
      this.#graces.push(...due);
      this.#logger.warn(`presence: settling grace periods failed: ${message(error)}`);
    }
  }

  async #beatAndReap(now: number): Promise<void> {
    this.#lastBeat = now;
    try {
      const { lost, reaped } = await this.#store.heartbeat(now);
      this.#healthySince ??= now;
      if (lost) this.#rejoin();
      if (reaped) {
        // After the rejoin: its joins cancel the grace periods of users still connected here.
        this.#graces.push(...reaped.graces);
        this.#emit(reaped.transitions);
      }
    } catch (error) {
      this.#healthySince = null;
      this.#logger.warn(`presence: heartbeat failed: ${message(error)}`);
      return;
    }
    // After an outage every pod's heartbeat is stale: reap only once the others have had two
    // intervals to beat again, or every pod would be reaped and rejoin (an offline/online storm).
    if (now - this.#healthySince < 2 * this.#refreshMs) return;
    try {
      const reaped = await this.#store.reap(now);
      this.#graces.push(...reaped.graces);
      this.#emit(reaped.transitions);
    } catch (error) {
      this.#logger.warn(`presence: reaping failed: ${message(error)}`);
    }
  }

  /** The store lost this pod's entries (reaped while alive, or Redis lost its data). */
  #rejoin(): void {
    this.#logger.warn(
      `presence: the store lost this pod's entries; joining ${this.#joined.size} streams again`,
    );
    // Pending grace periods stay: settling one the store no longer has (another token, or
    // none) does nothing, and one decided meanwhile (a leave racing the loss) must be settled.
    for (const [stream, channels] of this.#joined) {
      this.#enqueue(channels.map((channel) => joinOf(stream, channel)));
    }
  }

  /** Publishes in decision order; the broker keeps that order per channel. */
  #emit(transitions: readonly PresenceTransition[]): void {
    for (const transition of transitions) {
      const publishing = this.#publish(transition);
      this.#publishes.add(publishing);
      void publishing.finally(() => this.#publishes.delete(publishing));
    }
  }

  async #publish(transition: PresenceTransition): Promise<void> {
    const { channel, userId, userName, status, version } = transition;
    const giveUpAt = Date.now() + this.#publishRetryMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#hub.publish(channel, {
          type: EventType.Presence,
          userId,
          userName,
          status,
          version,
        });
        this.#metrics?.presenceEvent(status);
        return;
      } catch (error) {
        if (Date.now() >= giveUpAt) {
          this.#logger.warn(
            `presence: dropped ${status} of ${userId} on ${channel}: ${message(error)}`,
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 2_000)));
      }
    }
  }
}

function joinOf(stream: SseStream, channel: ChannelName): PresenceChange {
  return {
    kind: "join",
    channel,
    streamId: String(stream.id),
    userId: stream.userId,
    userName: stream.userName,
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
