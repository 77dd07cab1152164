/**
 * Presence bookkeeping without I/O: parse the snapshot, apply live `presence` events.
 *
 * The server API (docs/channels.md): `GET /api/channels/:channel/presence` →
 * `{ channel, users: [{ userId, userName, connections }], total, truncated, version, cursor }`
 * (a room larger than the server's cap is listed in part: `truncated`, `total` counts everyone)
 * and live events
 * `{ type: "presence", channel, userId, userName, status: "online" | "offline", version }` on
 * the channel itself, `online` when a user's first connection appears and `offline` when their
 * last one is gone. `version` orders a channel's transitions: an event at or below the
 * snapshot's version is already in it, and per user only a greater version is newer (two pods'
 * events can arrive in the other order than they were decided).
 */

import { EventType } from "@realtime/protocol";

/** A user present in a channel. */
export interface PresenceUser {
  readonly userId: string;
  readonly userName: string;
  /** Open connections (tabs, devices) of the user in the channel; at least 1. */
  readonly connections: number;
}

/** A live `presence` event. */
export interface PresenceEvent {
  readonly type: typeof EventType.Presence;
  readonly channel: string;
  readonly userId: string;
  readonly userName?: string;
  readonly status: "online" | "offline";
  /** Orders the channel's transitions; absent from servers before versions. */
  readonly version?: number;
}

export type PresenceUsers = ReadonlyMap<string, PresenceUser>;

export function isPresenceEvent(event: { readonly type: string }): event is PresenceEvent {
  const { userId, status } = event as Partial<PresenceEvent>;
  return (
    event.type === EventType.Presence &&
    typeof userId === "string" &&
    (status === "online" || status === "offline")
  );
}

/** The `version` of a snapshot body (0 when it has none: every event is then newer). */
export function presenceSnapshotVersion(body: unknown): number {
  const version = (body as { version?: unknown } | null)?.version;
  return typeof version === "number" && Number.isSafeInteger(version) ? version : 0;
}

/**
 * How many online users a snapshot body leaves out: `total` minus the users listed when it is
 * `truncated` (a room larger than the server lists), else 0 (also for servers without these).
 */
export function presenceSnapshotHidden(body: unknown): number {
  const { users, total, truncated } = (body ?? {}) as {
    users?: unknown;
    total?: unknown;
    truncated?: unknown;
  };
  if (truncated !== true || !Array.isArray(users) || typeof total !== "number") return 0;
  return Number.isSafeInteger(total) ? Math.max(0, total - users.length) : 0;
}

/**
 * Which `presence` events are news: an event is stale when its version is at or below the
 * snapshot's or below one already applied for the same user. Events without a version (older
 * servers) always pass.
 */
export class PresenceVersions {
  #floor = 0;
  readonly #users = new Map<string, number>();

  /** Starts over from a snapshot taken at `version`. */
  reset(version: number): void {
    this.#floor = version;
    this.#users.clear();
  }

  /** True when `event` is newer than what was applied for its user; then remembers it. */
  admit(event: PresenceEvent): boolean {
    const version = event.version;
    if (typeof version !== "number") return true;
    if (version <= this.#floor || version <= (this.#users.get(event.userId) ?? 0)) return false;
    this.#users.set(event.userId, version);
    return true;
  }
}

/** The users of a snapshot body, or null when the body does not have the planned shape. */
export function parsePresenceSnapshot(body: unknown): PresenceUsers | null {
  const users = (body as { users?: unknown } | null)?.users;
  if (!Array.isArray(users)) return null;
  const result = new Map<string, PresenceUser>();
  for (const item of users as unknown[]) {
    const { userId, userName, connections } = (item ?? {}) as Record<string, unknown>;
    if (typeof userId !== "string") return null;
    result.set(userId, {
      userId,
      userName: typeof userName === "string" ? userName : userId,
      connections: typeof connections === "number" && connections > 0 ? connections : 1,
    });
  }
  return result;
}

/**
 * Applies one live event. Returns `users` itself when nothing changed, so a snapshot built on
 * it keeps its identity (no re-render for a repeated `online`).
 */
export function applyPresenceEvent(users: PresenceUsers, event: PresenceEvent): PresenceUsers {
  const known = users.get(event.userId);
  if (event.status === "offline") {
    if (!known) return users;
    const next = new Map(users);
    next.delete(event.userId);
    return next;
  }
  const userName = event.userName ?? known?.userName ?? event.userId;
  if (known && known.userName === userName) return users;
  const next = new Map(users);
  next.set(event.userId, { userId: event.userId, userName, connections: known?.connections ?? 1 });
  return next;
}
