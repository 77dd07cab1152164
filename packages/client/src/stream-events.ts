/**
 * What one EventSource says, as the connection machine needs it: JSON parsed, control events
 * by name, a refused response told apart from a dropped connection, and the cursor every event
 * carries. Callbacks of an EventSource that is no longer the live one are dropped (a closed
 * EventSource may still deliver what it had queued).
 */
import { ControlEvent } from "@realtime/protocol";
import { EVENT_SOURCE_CLOSED, type EventSourceLike } from "./event-source.ts";
import type { StreamFailure } from "./reconnect-policy.ts";

export interface StreamEventHandlers {
  /** Whether `source` is still the live stream; nothing is reported once it is not. */
  readonly isLive: () => boolean;
  /** Every event's `lastEventId` (the `ready` event carries the starting cursor). */
  readonly onCursor: (id: unknown) => void;
  readonly onOpen: () => void;
  /** An application event's JSON and its id (the stream's cursor after it; null if none). */
  readonly onMessage: (data: Record<string, unknown>, id: string | null) => void;
  readonly onReset: (data: Record<string, unknown>) => void;
  /** The stream ended: a `close` event, an HTTP refusal, or a dropped connection. */
  readonly onFailure: (failure: StreamFailure) => void;
  /** The response was refused without a status (a browser): ask why some other way. */
  readonly onRefused: () => void;
}

/** What the client reads from the events an EventSource dispatches (all optional). */
interface MessageEventFields {
  readonly data?: unknown;
  readonly lastEventId?: unknown;
  /** HTTP status on the `eventsource` package's error events. */
  readonly code?: unknown;
  readonly message?: unknown;
}

export function listenToStream(source: EventSourceLike, handlers: StreamEventHandlers): void {
  const live = (handle: (event: MessageEventFields) => void) => (event: Event) => {
    if (!handlers.isLive()) return;
    const fields = event as MessageEventFields;
    // A browser stamps every event with the stream's last id.
    handlers.onCursor(fields.lastEventId);
    handle(fields);
  };
  source.addEventListener("open", live(handlers.onOpen));
  source.addEventListener(
    "message",
    live(({ data, lastEventId }) => {
      const parsed = parseJson(data);
      const id = typeof lastEventId === "string" && lastEventId !== "" ? lastEventId : null;
      if (parsed) handlers.onMessage(parsed, id);
    }),
  );
  // The server's first event: `live` has already noted its id, the stream's starting cursor,
  // so a stream dropped before any other event still resumes from where it began.
  source.addEventListener(
    ControlEvent.Ready,
    live(() => {}),
  );
  source.addEventListener(
    ControlEvent.Reset,
    live(({ data }) => {
      const parsed = parseJson(data);
      if (parsed) handlers.onReset(parsed);
    }),
  );
  source.addEventListener(
    ControlEvent.Close,
    live(({ data }) => {
      const parsed = parseJson(data);
      const code = parsed?.code;
      if (typeof code !== "number") return handlers.onFailure({ kind: "transport" });
      const channels = Array.isArray(parsed?.channels)
        ? parsed.channels.filter((c): c is string => typeof c === "string")
        : [];
      const reason = String(parsed?.reason ?? "");
      handlers.onFailure({ kind: "close", code, reason, ...(channels.length > 0 && { channels }) });
    }),
  );
  source.addEventListener(
    "error",
    live(({ code, message }) => {
      // CLOSED here means the response itself was refused (non-2xx or not an event stream);
      // a dropped connection leaves the EventSource CONNECTING.
      const refused = source.readyState === EVENT_SOURCE_CLOSED;
      if (typeof code === "number") {
        const text = typeof message === "string" ? { message } : {};
        handlers.onFailure({ kind: "http", status: code, ...text });
      } else if (refused) {
        handlers.onRefused();
      } else {
        handlers.onFailure({ kind: "transport" });
      }
    }),
  );
}

function parseJson(data: unknown): Record<string, unknown> | null {
  if (typeof data !== "string") return null;
  try {
    const value: unknown = JSON.parse(data);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
