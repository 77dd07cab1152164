/**
 * Presence bookkeeping without I/O: parse the snapshot, apply live `presence` events.
 *
 * Written against the planned server API (issue 7; not built yet):
 * `GET /api/channels/:channel/presence` → `{ channel, users: [{ userId, userName, connections }] }`
 * and live events `{ type: "presence", channel, userId, userName, status: "online" | "offline" }`
 * on the channel itself, `online` when a user's first connection appears and `offline` when
 * their last one is gone.
 */

/** A user present in a channel. */
export interface PresenceUser {
  readonly userId: string;
  readonly userName: string;
  /** Open connections (tabs, devices) of the user in the channel; at least 1. */
  readonly connections: number;
}

/** A live `presence` event. */
export interface PresenceEvent {
  readonly type: "presence";
  readonly channel: string;
  readonly userId: string;
  readonly userName?: string;
  readonly status: "online" | "offline";
}

export type PresenceUsers = ReadonlyMap<string, PresenceUser>;

export function isPresenceEvent(event: { readonly type: string }): event is PresenceEvent {
  const { userId, status } = event as Partial<PresenceEvent>;
  return (
    event.type === "presence" &&
    typeof userId === "string" &&
    (status === "online" || status === "offline")
  );
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
