/**
 * The stream's state from the client's state machine: connected, connecting, reconnecting in
 * N s (the backoff delay of the transition), offline. The countdown is visible only; screen
 * readers hear the state once per change, not every second.
 */
import type { ConnectionSnapshot } from "@realtime/client";
import { useConnectionState, useRealtimeClient } from "@realtime/react";
import { useNow, useServices } from "../context.ts";

type Tone = "ok" | "busy" | "warn" | "off";

interface Shown {
  readonly tone: Tone;
  /** Visible text. */
  readonly text: string;
  /** What screen readers hear (no countdown). */
  readonly spoken: string;
  readonly detail: string;
  readonly canRetry: boolean;
}

const TERMINAL_REASONS = new Set(["http_error", "server_close", "token_refresh_failed"]);

function describe(snapshot: ConnectionSnapshot, retryInMs: number | null): Shown {
  const { state, change } = snapshot;
  switch (state) {
    case "open":
      return {
        tone: "ok",
        text: "connected",
        spoken: "connected",
        detail: "Live: one event stream carries every room and your jobs.",
        canRetry: false,
      };
    case "connecting":
      return {
        tone: "busy",
        text: "connecting…",
        spoken: "connecting",
        detail: "Opening the event stream.",
        canRetry: false,
      };
    case "reconnecting": {
      if (retryInMs === null) {
        return {
          tone: "off",
          text: "offline",
          spoken: "offline",
          detail: "No network: the stream reconnects as soon as the device is back online.",
          canRetry: false,
        };
      }
      const seconds = Math.ceil(retryInMs / 1000);
      const why = change?.message ? ` (${change.message})` : "";
      return {
        tone: "warn",
        text: seconds > 0 ? `reconnecting in ${seconds} s` : "reconnecting…",
        spoken: "reconnecting",
        detail: `The stream dropped${why}. The client retries with backoff and replays what was missed.`,
        canRetry: false,
      };
    }
    default: {
      const refused = change !== null && TERMINAL_REASONS.has(change.reason);
      return {
        tone: "off",
        text: refused ? "disconnected" : "offline",
        spoken: refused ? "disconnected" : "offline",
        detail: refused
          ? `The server refused the stream${change?.message ? `: ${change.message}` : ""}.`
          : "Not connected.",
        canRetry: refused,
      };
    }
  }
}

export function ConnectionBadge() {
  const client = useRealtimeClient();
  const { changeTimes } = useServices();
  const snapshot = useConnectionState();
  const { state, change } = snapshot;
  const counting = state === "reconnecting" && change?.delayMs !== undefined;
  const now = useNow(counting ? 250 : null);
  let retryInMs: number | null = null;
  if (counting && change?.delayMs !== undefined) {
    const since = changeTimes.get(change) ?? now;
    retryInMs = Math.max(0, since + change.delayMs - now);
  }
  const shown = describe(snapshot, retryInMs);
  return (
    <div className="badge" data-tone={shown.tone} title={shown.detail}>
      <span className="badge-dot" aria-hidden="true" />
      <span className="badge-text" aria-hidden="true">
        {shown.text}
      </span>
      <span className="sr-only" role="status">
        Connection: {shown.spoken}
      </span>
      {shown.canRetry && (
        <button type="button" className="badge-retry" onClick={() => client.connect()}>
          Retry
        </button>
      )}
    </div>
  );
}
