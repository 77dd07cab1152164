/**
 * Types a message and POSTs it; it comes back to everyone, this page included, over SSE.
 *
 * A message keeps one `Idempotency-Key` until it is accepted: when the server cannot be reached
 * or is restarting (no answer, 502/503/504), the POST is retried with the same key, and so is a
 * second click on Send after "Not sent" — the server publishes it once however many attempts
 * got through.
 */
import { type FormEvent, type KeyboardEvent, useRef, useState } from "react";
import { describeError, isTransient, newIdempotencyKey } from "../api.ts";
import { useServices } from "../context.ts";

const MAX_LENGTH = 4000;
/** Waits before the retries of a POST that got no usable answer (about 15 s in all). */
const RETRY_DELAYS_MS = [500, 1_000, 2_000, 4_000, 8_000];

export function Composer({ room }: { room: string }) {
  const { session } = useServices();
  const [drafts, setDrafts] = useState<Readonly<Record<string, string>>>({});
  const [pending, setPending] = useState(false);
  const [error, setError] = useState("");
  const [retrying, setRetrying] = useState(false);
  /** The message being sent and its key, kept until the server accepted it. */
  const attempt = useRef<{ room: string; content: string; key: string } | null>(null);
  const text = drafts[room] ?? "";
  const setText = (value: string) => setDrafts((all) => ({ ...all, [room]: value }));

  async function send(event?: FormEvent) {
    event?.preventDefault();
    const content = text.trim();
    if (!content || pending) return;
    setPending(true);
    setError("");
    const previous = attempt.current;
    const current =
      previous && previous.room === room && previous.content === content
        ? previous
        : { room, content, key: newIdempotencyKey() };
    attempt.current = current;
    try {
      for (let retry = 0; ; retry++) {
        try {
          await session.call("/api/chat/messages", {
            method: "POST",
            body: { channel: `channel:${room}`, content },
            headers: { "idempotency-key": current.key },
          });
          break;
        } catch (cause) {
          const wait = RETRY_DELAYS_MS[retry];
          if (!isTransient(cause) || wait === undefined) throw cause;
          setRetrying(true);
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
      attempt.current = null;
      setDrafts((all) => ({ ...all, [room]: "" }));
    } catch (cause) {
      setError(`Not sent: ${describeError(cause)}`);
    } finally {
      setPending(false);
      setRetrying(false);
    }
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void send();
    }
  }

  const lines = Math.min(5, Math.max(1, text.split("\n").length));
  return (
    <form className="composer" onSubmit={send} aria-label={`Send a message to #${room}`}>
      <label htmlFor="composer-input" className="sr-only">
        Message
      </label>
      <textarea
        id="composer-input"
        rows={lines}
        maxLength={MAX_LENGTH}
        placeholder={`Message #${room}`}
        value={text}
        enterKeyHint="send"
        aria-describedby={error ? "composer-error" : undefined}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={onKeyDown}
      />
      <button
        type="submit"
        className="primary send"
        aria-label="Send"
        disabled={pending || !text.trim()}
      >
        <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
          <path d="M3 11.5 21 3l-8.5 18-2.2-7.3L3 11.5Z" fill="currentColor" />
        </svg>
        <span>Send</span>
      </button>
      {retrying && (
        <p className="composer-status" role="status">
          Sending… the server is not answering yet; trying again.
        </p>
      )}
      {error && (
        <p id="composer-error" className="form-error composer-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
