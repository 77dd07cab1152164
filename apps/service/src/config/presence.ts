/** `config.presence`: who is online, over every pod. */
import type { EnvReader } from "./env.ts";

export interface PresenceConfig {
  /**
   * How long a user stays online after their last connection in a channel closed, in ms
   * (`PRESENCE_GRACE_MS`), so a reconnect causes no offline/online pair. Default 5000; 0 = none.
   */
  readonly graceMs: number;
  /** A pod silent this long is dead and its users' presence is reaped, in ms (`PRESENCE_TTL_MS`). Default 10000. */
  readonly ttlMs: number;
  /**
   * Interval of each pod's presence heartbeat and reaper attempt, in ms (`PRESENCE_REFRESH_MS`).
   * Must be under half of {@link ttlMs}. Default 3000. A crashed pod's users go offline within
   * about ttlMs + refreshMs.
   */
  readonly refreshMs: number;
  /**
   * Most users one presence snapshot lists (`PRESENCE_SNAPSHOT_MAX_USERS`); a larger room's
   * snapshot says `truncated: true` and its `total`. 5,000 users were a 539 KB answer per read.
   * Default 1000; 0 = no cap.
   */
  readonly snapshotMaxUsers: number;
}

export function readPresence(r: EnvReader): PresenceConfig {
  const presence: PresenceConfig = {
    graceMs: r.int("PRESENCE_GRACE_MS", 5000, 0),
    ttlMs: r.int("PRESENCE_TTL_MS", 10000, 1000),
    refreshMs: r.int("PRESENCE_REFRESH_MS", 3000, 100),
    snapshotMaxUsers: r.int("PRESENCE_SNAPSHOT_MAX_USERS", 1000, 0),
  };
  if (presence.refreshMs * 2 >= presence.ttlMs) {
    // One late heartbeat must not get a live pod reaped.
    r.problems.push(
      `PRESENCE_REFRESH_MS (${presence.refreshMs}) must be under half of PRESENCE_TTL_MS (${presence.ttlMs})`,
    );
  }
  return presence;
}
