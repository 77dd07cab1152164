/**
 * Who is in a channel, as a store with `subscribe`/`getSnapshot` (what React's
 * `useSyncExternalStore` wants): a snapshot from the server, kept current by the channel's live
 * `presence` events on the client's one stream.
 *
 * Written against the planned API of issue 7 (see `presence-state.ts`), and tolerant of a
 * server without it: without the snapshot route (404) the store reports `partial` and shows
 * whoever the live events announce.
 *
 * Joining snapshot and stream without a gap: the snapshot is requested only once the stream is
 * open with the channel. From then on every event reaches the store (held while the snapshot
 * loads), and the snapshot was taken after the stream's start, so nothing falls between the
 * two. Events already reflected in the snapshot (version at or below the snapshot's) and
 * events overtaken by a later one for the same user (two pods publish in the other order than
 * they decided) are dropped by their `version`.
 */
import { type ChannelName, parseChannel, printable } from "@realtime/protocol";
import {
  applyPresenceEvent,
  isPresenceEvent,
  type PresenceEvent,
  type PresenceUser,
  type PresenceUsers,
  PresenceVersions,
  parsePresenceSnapshot,
  presenceSnapshotVersion,
} from "./presence-state.ts";
import type { RealtimeClient, Subscription } from "./realtime-client.ts";

/**
 * - `loading`: the snapshot is on its way (live events are held until it arrives).
 * - `ready`: snapshot plus every live event since.
 * - `partial`: no snapshot (no presence route yet, or it failed): live events only, so users
 *   who were already there before this store started are missing.
 */
export type PresenceStatus = "loading" | "ready" | "partial";

export interface PresenceSnapshot {
  readonly channel: ChannelName;
  readonly status: PresenceStatus;
  /** Present users: the snapshot's order, then arrivals. */
  readonly users: readonly PresenceUser[];
  /** Why the status is `partial`, e.g. `HTTP 404`. */
  readonly error?: string;
}

export interface PresenceStore {
  getSnapshot(): PresenceSnapshot;
  /** The first subscriber starts the store (subscribes the channel, loads the snapshot); the last one stops it. */
  subscribe(listener: () => void): () => void;
}

export interface PresenceStoreOptions {
  /** Path of the snapshot route for a channel. Default `/api/channels/<channel>/presence`. */
  readonly path?: (channel: ChannelName) => string;
}

export function createPresenceStore(
  client: RealtimeClient,
  channel: string,
  options: PresenceStoreOptions = {},
): PresenceStore {
  const parsed = parseChannel(channel);
  if (!parsed.ok) throw new TypeError(`invalid channel "${printable(channel)}": ${parsed.reason}`);
  return new Presence(client, parsed.channel.name, options.path ?? defaultPath);
}

function defaultPath(channel: ChannelName): string {
  return `/api/channels/${encodeURIComponent(channel)}/presence`;
}

class Presence implements PresenceStore {
  readonly #client: RealtimeClient;
  readonly #channel: ChannelName;
  readonly #path: (channel: ChannelName) => string;
  readonly #listeners = new Set<() => void>();
  #users: PresenceUsers = new Map();
  readonly #versions = new PresenceVersions();
  #snapshot: PresenceSnapshot;
  /** Live events held until the snapshot is in, then applied on top of it; null once live. */
  #held: PresenceEvent[] | null = null;
  /** A snapshot is wanted and not yet requested (waits for the stream to carry the channel). */
  #wanted = false;
  #subscription: Subscription | null = null;
  #unwatch: (() => void) | null = null;
  #abort: AbortController | null = null;

  constructor(client: RealtimeClient, channel: ChannelName, path: (c: ChannelName) => string) {
    this.#client = client;
    this.#channel = channel;
    this.#path = path;
    this.#snapshot = { channel, status: "loading", users: [] };
  }

  getSnapshot = (): PresenceSnapshot => this.#snapshot;

  subscribe = (listener: () => void): (() => void) => {
    const wrapper = () => listener();
    this.#listeners.add(wrapper);
    if (this.#listeners.size === 1) this.#start();
    return () => {
      if (!this.#listeners.delete(wrapper) || this.#listeners.size > 0) return;
      this.#stop();
    };
  };

  #start(): void {
    this.#subscription = this.#client.subscribe(this.#channel, {
      onEvent: (event) => {
        if (!isPresenceEvent(event)) return;
        if (this.#held) this.#held.push(event);
        else if (this.#versions.admit(event)) {
          this.#set(applyPresenceEvent(this.#users, event), this.#snapshot.status);
        }
      },
      // The stream could not replay what we missed: who left meanwhile is unknown.
      onReset: () => this.#want(),
    });
    this.#unwatch = this.#client.onStateChange(() => this.#loadWhenCarried());
    this.#want();
  }

  #want(): void {
    this.#wanted = true;
    this.#held ??= [];
    this.#loadWhenCarried();
  }

  #loadWhenCarried(): void {
    const client = this.#client;
    if (!this.#wanted || client.state !== "open" || !client.channels.includes(this.#channel)) {
      return;
    }
    this.#wanted = false;
    void this.#load();
  }

  #stop(): void {
    this.#subscription?.unsubscribe();
    this.#subscription = null;
    this.#unwatch?.();
    this.#unwatch = null;
    this.#wanted = false;
    this.#abort?.abort();
    this.#abort = null;
    this.#held = null;
    this.#users = new Map();
    this.#versions.reset(0);
    this.#snapshot = { channel: this.#channel, status: "loading", users: [] };
  }

  async #load(): Promise<void> {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    let users: PresenceUsers | null = null;
    let error: string | undefined;
    try {
      const response = await this.#client.request(this.#path(this.#channel), {
        signal: abort.signal,
      });
      if (response.ok) {
        const body: unknown = await response.json();
        users = parsePresenceSnapshot(body);
        if (users) this.#versions.reset(presenceSnapshotVersion(body));
        else error = "the snapshot has an unknown shape";
      } else {
        error = `HTTP ${response.status}`;
      }
    } catch (cause) {
      error = cause instanceof Error ? cause.message : String(cause);
    }
    if (abort.signal.aborted) return;
    this.#abort = null;
    let next = users ?? this.#users;
    for (const event of this.#held ?? []) {
      if (this.#versions.admit(event)) next = applyPresenceEvent(next, event);
    }
    this.#held = null;
    this.#set(next, users ? "ready" : "partial", users ? undefined : error);
  }

  #set(users: PresenceUsers, status: PresenceStatus, error?: string): void {
    if (users === this.#users && status === this.#snapshot.status && !error) return;
    this.#users = users;
    this.#snapshot = {
      channel: this.#channel,
      status,
      users: [...users.values()],
      ...(error !== undefined && { error }),
    };
    for (const listener of [...this.#listeners]) listener();
  }
}
