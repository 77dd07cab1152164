/**
 * The readiness of a {@link RedisBroker} as one explicit state and one transition function.
 *
 * Redis pub/sub is lossy and client libraries resubscribe silently, so the broker is ready only
 * after it re-sent every subscription itself, Redis confirmed it and a probe came back through
 * the subscriber connection. `confirming`: not ready, the confirmation loop runs (or backs
 * off); `ready`: confirmed; `closed`: for good. Pure: the broker performs the effects.
 */

export type ReadinessPhase = "confirming" | "ready" | "closed";

export interface Readiness {
  readonly phase: ReadinessPhase;
  /** Whether it was ever ready: a later confirmation is a re-confirmation after a reconnect. */
  readonly everReady: boolean;
  /** Bumped whenever a connection drops: a confirmation begun before is worthless. */
  readonly generation: number;
  /** Consecutive checks that timed out on connections that looked up. */
  readonly timeouts: number;
  /** A connection error of this outage was logged (ioredis reports one per attempt). */
  readonly errorLogged: boolean;
}

export type ReadinessEvent =
  /** A connection dropped or was replaced, or a liveness probe failed. */
  | { readonly type: "down" }
  /** A confirmation begun at `generation` succeeded. */
  | { readonly type: "confirmed"; readonly generation: number }
  /** A check (confirmation or probe) timed out on connections that looked up. */
  | { readonly type: "timed-out" }
  /** A connection reported an error. */
  | { readonly type: "error" }
  | { readonly type: "close" };

/** What the broker does after a transition. */
export type ReadinessEffect =
  /** Log that the broker is no longer ready. */
  | "not-ready"
  /** Ready for the first time: wake whoever waits for it. */
  | "ready"
  /** Ready again after a reconnect: also tell `onResubscribed` listeners (the hub backfills). */
  | "ready-again"
  /** Log the error (the first of an outage). */
  | "log-error"
  /** Drop and reconnect every connection: checks keep timing out on them. */
  | "replace-connections";

export interface Transition {
  readonly state: Readiness;
  readonly effects: readonly ReadinessEffect[];
}

/**
 * Timeouts in a row after which connections that look up are replaced (a half-open socket, a
 * node that no longer gets the traffic): waiting for TCP to notice takes minutes. Fast errors
 * do not count; the client libraries reconnect on those themselves.
 */
export const REPLACE_AFTER_TIMEOUTS = 2;

export const INITIAL_READINESS: Readiness = {
  phase: "confirming",
  everReady: false,
  generation: 0,
  timeouts: 0,
  errorLogged: false,
};

const NONE: readonly ReadinessEffect[] = [];

export function transition(state: Readiness, event: ReadinessEvent): Transition {
  if (state.phase === "closed") return { state, effects: NONE };
  switch (event.type) {
    case "close":
      return { state: { ...state, phase: "closed" }, effects: NONE };
    case "down":
      return {
        state: { ...state, phase: "confirming", generation: state.generation + 1 },
        effects: state.phase === "ready" ? ["not-ready"] : NONE,
      };
    case "confirmed":
      if (state.phase !== "confirming" || event.generation !== state.generation) {
        return { state, effects: NONE }; // something dropped meanwhile: confirm again
      }
      return {
        state: { ...state, phase: "ready", everReady: true, timeouts: 0, errorLogged: false },
        effects: [state.everReady ? "ready-again" : "ready"],
      };
    case "timed-out":
      if (state.timeouts + 1 < REPLACE_AFTER_TIMEOUTS) {
        return { state: { ...state, timeouts: state.timeouts + 1 }, effects: NONE };
      }
      return { state: { ...state, timeouts: 0 }, effects: ["replace-connections"] };
    case "error":
      if (state.errorLogged) return { state, effects: NONE };
      return { state: { ...state, errorLogged: true }, effects: ["log-error"] };
  }
}
