/**
 * The signed-in page: rooms, the active room's messages and composer, who is online, and the
 * jobs. Wide screens show all of it side by side; a phone shows one section at a time.
 */
import { usePresence } from "@realtime/react";
import { useState } from "react";
import { useAppState, useServices } from "../context.ts";
import { TERMINAL } from "../jobs.ts";
import type { User } from "../session.ts";
import { Avatar } from "./Avatar.tsx";
import { Composer } from "./Composer.tsx";
import { ConnectionBadge } from "./ConnectionBadge.tsx";
import { RoomFeed, UserFeed } from "./Feeds.tsx";
import { Generate } from "./Generate.tsx";
import { Logo } from "./Logo.tsx";
import { Messages } from "./Messages.tsx";
import { Notices } from "./Notices.tsx";
import { People } from "./People.tsx";
import { RoomNav } from "./RoomNav.tsx";

type View = "chat" | "people" | "generate";

export function Workspace({ user }: { user: User }) {
  const { session } = useServices();
  const state = useAppState();
  const [view, setView] = useState<View>("chat");
  const presence = usePresence(`channel:${state.active}`);
  const room = state.rooms[state.active] ?? {
    id: state.active,
    items: [],
    unread: 0,
    loaded: false,
    older: null,
  };
  const online =
    presence && presence.status !== "loading" ? presence.users.length + presence.hidden : null;
  const running = state.jobs.filter((job) => !TERMINAL.has(job.status));
  const notices = state.notices.filter(
    (notice) => notice.channel === `channel:${state.active}` || notice.channel.startsWith("user:"),
  );

  return (
    <div className="app" data-view={view}>
      {state.order.map((id) => (
        <RoomFeed key={id} room={id} />
      ))}
      <UserFeed userId={user.id} />

      <header className="topbar">
        <div className="brand">
          <Logo />
          <span className="brand-name">realtime</span>
        </div>
        <ConnectionBadge />
        <div className="me">
          <Avatar id={user.id} name={user.name} size="sm" />
          <span className="me-name">
            <span className="sr-only">Signed in as </span>
            {user.name}
          </span>
          <button type="button" className="ghost small" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>

      <RoomNav state={state} onOpened={() => setView("chat")} />

      <nav className="views" aria-label="Sections">
        <button type="button" aria-pressed={view === "chat"} onClick={() => setView("chat")}>
          Chat
        </button>
        <button type="button" aria-pressed={view === "people"} onClick={() => setView("people")}>
          People{online !== null && <span className="pill">{online}</span>}
        </button>
        <button
          type="button"
          aria-pressed={view === "generate"}
          onClick={() => setView("generate")}
        >
          Generate
          {running.length > 0 && (
            <span className="pill">{Math.min(...running.map((job) => job.progress))}%</span>
          )}
        </button>
      </nav>

      <main className="chat" aria-labelledby="room-title">
        <header className="chat-head">
          <h1 id="room-title">
            <span className="room-hash" aria-hidden="true">
              #
            </span>
            {state.active}
          </h1>
          <p className="chat-sub">
            {online === null ? "…" : `${online} online`}
            <span aria-hidden="true"> · </span>
            <code>channel:{state.active}</code>
          </p>
        </header>
        <Notices notices={notices} />
        <Messages room={room} />
        <Composer room={state.active} />
      </main>

      <aside className="side" aria-label="Room details and jobs">
        <People room={state.active} presence={presence} />
        <Generate jobs={state.jobs} />
      </aside>
    </div>
  );
}
