/** Development login: a display name, no password. */
import { type FormEvent, useEffect, useRef, useState } from "react";
import { describeError } from "../api.ts";
import { useServices } from "../context.ts";
import { Logo } from "./Logo.tsx";

export function SignIn({ error }: { error?: string | undefined }) {
  const { session } = useServices();
  const [name, setName] = useState(() => session.rememberedName);
  const [pending, setPending] = useState(false);
  const [problem, setProblem] = useState(error ?? "");
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    input.current?.focus();
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const trimmed = name.trim();
    if (!trimmed) {
      setProblem("Type a name: it is what others see next to your messages.");
      return;
    }
    setPending(true);
    setProblem("");
    try {
      await session.signIn(trimmed);
    } catch (cause) {
      setProblem(describeError(cause));
      setPending(false);
    }
  }

  return (
    <main className="signin">
      <div className="signin-card">
        <div className="signin-brand">
          <Logo size={40} />
          <span>realtime</span>
        </div>
        <h1>Chat, presence and live jobs over one Server-Sent Events stream</h1>
        <p className="lede">
          Messages go in as plain HTTP POSTs and come back to everyone in the room over a single
          resumable event stream. No WebSockets.
        </p>
        <form className="signin-form" onSubmit={submit} noValidate>
          <label htmlFor="name">Your name</label>
          <div className="signin-row">
            <input
              ref={input}
              id="name"
              type="text"
              autoComplete="nickname"
              maxLength={40}
              required
              placeholder="e.g. Ada"
              value={name}
              aria-invalid={problem ? true : undefined}
              aria-describedby={problem ? "signin-error" : "signin-hint"}
              onChange={(event) => setName(event.target.value)}
            />
            <button type="submit" className="primary" disabled={pending}>
              {pending ? "Signing in…" : "Sign in"}
            </button>
          </div>
          {problem ? (
            <p id="signin-error" className="form-error" role="alert">
              {problem}
            </p>
          ) : (
            <p id="signin-hint" className="hint">
              Development login, no password. Open a second window (or a private one) and sign in as
              someone else to see messages and presence live.
            </p>
          )}
        </form>
        <ul className="signin-points">
          <li>
            <strong>Rooms</strong> with live messages and who is online
          </li>
          <li>
            <strong>Jobs</strong> whose progress bar is driven by server events
          </li>
          <li>
            <strong>Resumes</strong> after a dropped connection, without losing a message
          </li>
        </ul>
      </div>
    </main>
  );
}
