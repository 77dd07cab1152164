/** The rooms joined (switch, leave) and "join room by name" with the channel grammar. */
import { type FormEvent, useState } from "react";
import { useServices } from "../context.ts";
import { type AppState, DEFAULT_ROOMS, parseRoomInput } from "../store.ts";

const DEFAULTS: ReadonlySet<string> = new Set(DEFAULT_ROOMS);

export function RoomNav({ state, onOpened }: { state: AppState; onOpened: () => void }) {
  const { store } = useServices();
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [joinOpen, setJoinOpen] = useState(false);

  function open(id: string) {
    const problem = store.open(id);
    if (problem) {
      setError(problem);
      return false;
    }
    onOpened();
    return true;
  }

  function join(event: FormEvent) {
    event.preventDefault();
    const parsed = parseRoomInput(name);
    if ("error" in parsed) {
      setError(parsed.error);
      return;
    }
    if (open(parsed.id)) {
      setName("");
      setError("");
      setJoinOpen(false);
    }
  }

  return (
    <nav className="rooms" aria-label="Rooms" data-join-open={joinOpen}>
      <h2 className="rooms-title">Rooms</h2>
      <ul className="room-list">
        {state.order.map((id) => {
          const room = state.rooms[id];
          const unread = room?.unread ?? 0;
          const current = id === state.active;
          const shownUnread = unread > 99 ? "99+" : String(unread);
          return (
            <li key={id} className="room-item">
              <button
                type="button"
                className="room"
                aria-current={current ? "page" : undefined}
                aria-label={unread > 0 ? `${id}, ${shownUnread} unread` : id}
                onClick={() => open(id)}
              >
                <span className="room-hash" aria-hidden="true">
                  #
                </span>
                <span className="room-name">{id}</span>
                {unread > 0 && (
                  <span className="unread" aria-hidden="true">
                    {shownUnread}
                  </span>
                )}
              </button>
              {!DEFAULTS.has(id) && (
                <button
                  type="button"
                  className="room-leave"
                  aria-label={`Leave #${id}`}
                  title={`Leave #${id}`}
                  onClick={() => store.leave(id)}
                >
                  ×
                </button>
              )}
            </li>
          );
        })}
        <li className="room-item join-toggle-item">
          <button
            type="button"
            className="room join-toggle"
            aria-expanded={joinOpen}
            aria-controls="join-form"
            onClick={() => setJoinOpen((value) => !value)}
          >
            + Join
          </button>
        </li>
      </ul>
      <form id="join-form" className="join" onSubmit={join} noValidate>
        <label htmlFor="join-room">Join room by name</label>
        <div className="join-row">
          <input
            id="join-room"
            type="text"
            value={name}
            placeholder="room-name"
            autoCapitalize="none"
            autoCorrect="off"
            spellCheck={false}
            maxLength={140}
            aria-invalid={error ? true : undefined}
            aria-describedby="join-help"
            onChange={(event) => {
              setName(event.target.value);
              if (error) setError("");
            }}
          />
          <button type="submit">Join</button>
        </div>
        <p id="join-help" className={error ? "form-error" : "hint"} aria-live="polite">
          {error || "Letters, digits and _ . - ~ @ (becomes channel:<name>)"}
        </p>
      </form>
    </nav>
  );
}
