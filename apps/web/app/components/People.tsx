/** Who is online in the room: a snapshot, then the room's live presence events (usePresence). */
import type { PresenceSnapshot } from "@realtime/client";
import { useConnectionState } from "@realtime/react";
import { useServices } from "../context.ts";
import { Avatar } from "./Avatar.tsx";

export function People({ room, presence }: { room: string; presence: PresenceSnapshot | null }) {
  const { session } = useServices();
  const users = [...(presence?.users ?? [])].sort((a, b) => {
    const mine = Number(session.isMe(b.userId)) - Number(session.isMe(a.userId));
    return mine !== 0 ? mine : a.userName.localeCompare(b.userName);
  });
  const loading = !presence || presence.status === "loading";
  // A very large room is listed in part by the server; the rest is a count.
  const hidden = presence?.hidden ?? 0;
  // While the stream is down, arrivals and departures are not seen: say the list may be old.
  const stale = useConnectionState().state !== "open";
  return (
    <section className="panel people" aria-labelledby="people-title">
      <h2 id="people-title" className="panel-title">
        Online in #{room}
        {!loading && <span className="count">{users.length + hidden}</span>}
      </h2>
      {loading ? (
        <p className="hint">Loading who is here…</p>
      ) : (
        <ul className="people-list" aria-label={`Online in #${room}`} data-stale={stale}>
          {users.map((user) => {
            const me = session.isMe(user.userId);
            return (
              <li key={user.userId} className="person" data-name={user.userName}>
                <Avatar id={user.userId} name={user.userName} size="sm" />
                <span className="person-name">{user.userName}</span>
                {me && <span className="tag">you</span>}
                {user.connections > 1 && (
                  <span className="hint person-tabs">{user.connections} tabs</span>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {!loading && hidden > 0 && <p className="hint">and {hidden.toLocaleString()} more</p>}
      {!loading && stale && (
        <p className="hint">As of the last connection: updates resume when it is back.</p>
      )}
      {presence?.status === "partial" && (
        <p className="hint">Showing arrivals only: the presence list could not be loaded.</p>
      )}
    </section>
  );
}
