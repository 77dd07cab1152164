/** Types a message and POSTs it; it comes back to everyone, this page included, over SSE. */
import { type FormEvent, type KeyboardEvent, useState } from "react";
import { describeError } from "../api.ts";
import { useServices } from "../context.ts";

const MAX_LENGTH = 4000;

export function Composer({ room }: { room: string }) {
  const { session } = useServices();
  const [drafts, setDrafts] = useState<Readonly<Record<string, string>>>({});
  const [pending, setPending] = useState(false);
  const [error, setError] = useState("");
  const text = drafts[room] ?? "";
  const setText = (value: string) => setDrafts((all) => ({ ...all, [room]: value }));

  async function send(event?: FormEvent) {
    event?.preventDefault();
    const content = text.trim();
    if (!content || pending) return;
    setPending(true);
    setError("");
    try {
      await session.call("/api/chat/messages", {
        method: "POST",
        body: { channel: `channel:${room}`, content },
      });
      setDrafts((all) => ({ ...all, [room]: "" }));
    } catch (cause) {
      setError(`Not sent: ${describeError(cause)}`);
    } finally {
      setPending(false);
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
      {error && (
        <p id="composer-error" className="form-error composer-error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
