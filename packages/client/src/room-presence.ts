/**
 * Who is in a channel, as a store with `subscribe`/`getSnapshot` (what React's
 * `useSyncExternalStore` wants): a snapshot from the server, kept current by the channel's live
 * `presence` events on the client's one stream.
 *
 * The API is the server's presence (docs/channels.md; parsed in `presence-state.ts`). A server
 * without the snapshot route (404: an older one) is tolerated: the store reports `partial` and
 * shows whoever the live events announce.
 *
 * A very large room's snapshot lists only part of it (the server's cap): the store keeps the
 * users it lists plus every later arrival, and counts the rest in `hidden`, lowered when an
 * unlisted user leaves, so `users.length + hidden` is who is online.
 *
 * Joining snapshot and stream without a gap: the snapshot is requested only once the stream is
 * open with the channel. From then on every event reaches the store (held while the snapshot
 * loads), and the snapshot was taken after the stream's start, so nothing falls between the
 * two. Events already reflected in the snapshot (version at or below the snapshot's) and
 * events overtaken by a later one for the same user (two pods publish in the other order than
 * they decided) are dropped by their `version`.
 */
import { type ChannelName, parseChannel, printable } from "@realtime/protocol";
import type { RealtimeClient, Subscription } from "./client-api.ts";
import {
  applyPresenceEvent,
  isPresenceEvent,
  type PresenceEvent,
  type PresenceUser,
  type PresenceUsers,
  PresenceVersions,
  parsePresenceSnapshot,
  presenceSnapshotHidden,
  presenceSnapshotVersion,
} from "./presence-state.ts";
import { StoreListeners } from "./store-listeners.ts";

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
  /**
   * Users online but not in {@link users}: a very large room's snapshot lists only part of it
   * (`PRESENCE_SNAPSHOT_MAX_USERS` on the server). Lowered when one of them leaves; 0 when the
   * snapshot was whole. `users.length + hidden` is how many are online.
   */
  readonly hidden: number;
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
  readonly #listeners = new StoreListeners(
    () => this.#start(),
    () => this.#stop(),
  );
  #users: PresenceUsers = new Map();
  /** Online users the snapshot left out and no event has shown leaving. */
  #hidden = 0;
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
    this.#snapshot = { channel, status: "loading", users: [], hidden: 0 };
  }

  getSnapshot = (): PresenceSnapshot => this.#snapshot;

  subscribe = (listener: () => void): (() => void) => this.#listeners.add(listener);

  #start(): void {
    this.#subscription = this.#client.subscribe(this.#channel, {
      onEvent: (event) => {
        if (!isPresenceEvent(event)) return;
        if (this.#held) this.#held.push(event);
        else if (this.#versions.admit(event)) {
          this.#set(this.#apply(this.#users, event), this.#snapshot.status);
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
    this.#hidden = 0;
    this.#versions.reset(0);
    this.#snapshot = { channel: this.#channel, status: "loading", users: [], hidden: 0 };
  }

  /** Applies a live event; an unlisted user leaving was one of the hidden ones. */
  #apply(users: PresenceUsers, event: PresenceEvent): PresenceUsers {
    if (event.status === "offline" && !users.has(event.userId) && this.#hidden > 0) {
      this.#hidden--;
    }
    return applyPresenceEvent(users, event);
  }

  async #load(): Promise<void> {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    let users: PresenceUsers | null = null;
    let hidden = this.#hidden;
    let error: string | undefined;
    try {
      const response = await this.#client.request(this.#path(this.#channel), {
        signal: abort.signal,
      });
      if (response.ok) {
        const body: unknown = await response.json();
        users = parsePresenceSnapshot(body);
        if (users) {
          this.#versions.reset(presenceSnapshotVersion(body));
          hidden = presenceSnapshotHidden(body);
        } else {
          error = "the snapshot has an unknown shape";
        }
      } else {
        error = `HTTP ${response.status}`;
      }
    } catch (cause) {
      error = cause instanceof Error ? cause.message : String(cause);
    }
    if (abort.signal.aborted) return;
    this.#abort = null;
    this.#hidden = hidden;
    let next = users ?? this.#users;
    for (const event of this.#held ?? []) {
      if (this.#versions.admit(event)) next = this.#apply(next, event);
    }
    this.#held = null;
    this.#set(next, users ? "ready" : "partial", users ? undefined : error);
  }

  #set(users: PresenceUsers, status: PresenceStatus, error?: string): void {
    const hidden = this.#hidden;
    const same = users === this.#users && hidden === this.#snapshot.hidden;
    if (same && status === this.#snapshot.status && !error) return;
    this.#users = users;
    this.#snapshot = {
      channel: this.#channel,
      status,
      users: [...users.values()],
      hidden,
      ...(error !== undefined && { error }),
    };
    this.#listeners.notify();
  }
}
