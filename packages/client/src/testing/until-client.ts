/** Waiting on a real client in tests: re-checked on its own events, never on a timer. */
import type { RealtimeClient } from "../client-api.ts";

/**
 * Resolves when `check` holds, re-checked on every state change and event of `client`;
 * rejects naming `what` after `timeoutMs`.
 */
export function untilClient(
  client: RealtimeClient,
  what: string,
  check: () => boolean,
  timeoutMs = 5000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const stops: Array<() => void> = [];
    const done = (error?: Error) => {
      clearTimeout(timer);
      for (const stop of stops) stop();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(
      () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
    const attempt = () => {
      if (check()) done();
    };
    stops.push(client.onStateChange(attempt), client.onEvent(attempt));
    attempt();
  });
}
