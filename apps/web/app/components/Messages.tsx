/** A room's messages, live, kept scrolled to the bottom unless the reader scrolled up. */
import { useLayoutEffect, useRef } from "react";
import { useServices } from "../context.ts";
import { formatTime } from "../format.ts";
import type { ChatMessage, Room } from "../store.ts";
import { Avatar } from "./Avatar.tsx";

/** Messages of one author this close together are grouped under one name. */
const GROUP_MS = 5 * 60 * 1000;

function continues(previous: ChatMessage | undefined, message: ChatMessage): boolean {
  if (!previous || previous.userId !== message.userId) return false;
  return Date.parse(message.timestamp) - Date.parse(previous.timestamp) < GROUP_MS;
}

export function Messages({ room }: { room: Room }) {
  const { session } = useServices();
  const scroller = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const shownRoom = useRef(room.id);

  // After every change: follow the conversation if the reader is at the bottom, and always
  // start a freshly opened room at its latest message.
  useLayoutEffect(() => {
    const element = scroller.current;
    if (!element) return;
    if (shownRoom.current !== room.id) {
      shownRoom.current = room.id;
      stick.current = true;
    }
    if (stick.current && room.items.length > 0) element.scrollTop = element.scrollHeight;
  });

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
      {room.items.length === 0 ? (
        <div className="empty">
          <p className="empty-title">No messages in #{room.id} yet</p>
          <p>Say hello: everyone in the room sees it the moment the server accepts it.</p>
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
