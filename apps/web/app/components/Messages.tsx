/**
 * A room's messages: what was said before it opened (from history, more on "Load older"),
 * then live ones, kept scrolled to the bottom unless the reader scrolled up.
 */
import { useRealtimeClient } from "@realtime/react";
import { useLayoutEffect, useRef, useState } from "react";
import { describeError } from "../api.ts";
import { useServices } from "../context.ts";
import { formatTime } from "../format.ts";
import type { ChatMessage, Room } from "../store.ts";
import { Avatar } from "./Avatar.tsx";
import { OLDER_LIMIT } from "./Feeds.tsx";

/** Messages of one author this close together are grouped under one name. */
const GROUP_MS = 5 * 60 * 1000;

function continues(previous: ChatMessage | undefined, message: ChatMessage): boolean {
  if (!previous || previous.userId !== message.userId) return false;
  return Date.parse(message.timestamp) - Date.parse(previous.timestamp) < GROUP_MS;
}

export function Messages({ room }: { room: Room }) {
  const { session, store } = useServices();
  const client = useRealtimeClient();
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const shownRoom = useRef(room.id);
  /** Distance from the bottom to keep while older messages are put in front. */
  const keepFromBottom = useRef<number | null>(null);
  const [older, setOlder] = useState<{ loading: boolean; error?: string }>({ loading: false });

  // After every change: keep the reader's place when older messages came in front, else
  // follow the conversation if the reader is at the bottom, and always start a freshly opened
  // room at its latest message.
  useLayoutEffect(() => {
    const element = scroller.current;
    if (!element) return;
    if (shownRoom.current !== room.id) {
      shownRoom.current = room.id;
      stick.current = true;
      keepFromBottom.current = null;
    }
    if (keepFromBottom.current !== null) {
      element.scrollTop = element.scrollHeight - keepFromBottom.current;
      keepFromBottom.current = null;
    } else if (stick.current && room.items.length > 0) {
      element.scrollTop = element.scrollHeight;
    }
  });

  async function loadOlder(before: string) {
    const roomId = room.id;
    // Reading back, not following: live messages must not pull the reader down meanwhile
    // (the scroll event that says so may not have been handled yet).
    stick.current = false;
    setOlder({ loading: true });
    try {
      const page = await client.history(`channel:${roomId}`, { limit: OLDER_LIMIT, before });
      const element = scroller.current;
      if (element && shownRoom.current === roomId) {
        keepFromBottom.current = element.scrollHeight - element.scrollTop;
      }
      store.history(roomId, page.events, page.reset ? null : page.previous);
      setOlder({ loading: false });
    } catch (error) {
      setOlder({ loading: false, error: describeError(error) });
    }
  }

  let previous: ChatMessage | undefined;
  return (
    <div
      ref={scroller}
      className="messages"
      role="log"
      aria-label={`Messages in #${room.id}`}
      onScroll={(event) => {
        const element = event.currentTarget;
        stick.current = element.scrollHeight - element.scrollTop - element.clientHeight < 48;
      }}
    >
      {room.older !== null && (
        <div className="older">
          <button
            type="button"
            className="ghost small"
            disabled={older.loading}
            onClick={() => room.older !== null && void loadOlder(room.older)}
          >
            {older.loading ? "Loading…" : "Load older messages"}
          </button>
          {older.error && <span role="alert">{older.error}</span>}
        </div>
      )}
      {room.items.length === 0 ? (
        <div className="empty">
          {room.loaded ? (
            <>
              <p className="empty-title">No messages in #{room.id} yet</p>
              <p>Say hello: everyone in the room sees it the moment the server accepts it.</p>
            </>
          ) : (
            <p className="empty-title">Loading #{room.id}…</p>
          )}
        </div>
      ) : (
        <ol className="message-list">
          {room.items.map((item) => {
            if (item.kind === "gap") {
              previous = undefined;
              return (
                <li key={item.key} className="gap">
                  <span>Some messages may be missing here</span>
                </li>
              );
            }
            const grouped = continues(previous, item);
            previous = item;
            const mine = session.isMe(item.userId);
            return (
              <li
                key={item.key}
                className={`msg${mine ? " mine" : ""}${grouped ? " grouped" : ""}`}
                data-author={item.userName}
              >
                {grouped ? (
                  <span className="avatar-space" aria-hidden="true" />
                ) : (
                  <Avatar id={item.userId} name={item.userName} />
                )}
                <div className="msg-body">
                  <div className={grouped ? "msg-meta sr-only" : "msg-meta"}>
                    <span className="msg-author">{item.userName}</span>
                    {mine && <span className="sr-only"> (you)</span>}
                    <time dateTime={item.timestamp}>{formatTime(item.timestamp)}</time>
                  </div>
                  <p className="msg-text">{item.content}</p>
                </div>
              </li>
            );
          })}
        </ol>
      )}
    </div>
  );
}
