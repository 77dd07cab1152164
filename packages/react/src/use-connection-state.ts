/** The shared stream's state, for a status line ("reconnecting in 8 s…", "offline"). */
import type { ConnectionSnapshot } from "@realtime/client";
import { useCallback, useSyncExternalStore } from "react";
import { useRealtimeClient } from "./realtime-provider.ts";

/**
 * `{ state, change }`: the state (`connecting`, `open`, `reconnecting`, `closed`) and the
 * transition that led to it (reason, close code, HTTP status, next delay). Re-renders on every
 * transition and on nothing else.
 */
export function useConnectionState(): ConnectionSnapshot {
  const client = useRealtimeClient();
  const subscribe = useCallback((onChange: () => void) => client.onStateChange(onChange), [client]);
  const snapshot = () => client.getSnapshot();
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}
