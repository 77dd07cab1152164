/**
 * Who is in a channel: the server's snapshot (`GET /api/channels/:channel/presence`) kept live
 * by the channel's `presence` events (see `createPresenceStore` in @realtime/client). Against a
 * server without the snapshot route it reports `status: "partial"` with the users announced live.
 */
import { createPresenceStore, type PresenceSnapshot } from "@realtime/client";
import { useCallback, useMemo, useSyncExternalStore } from "react";
import { useRealtimeClient } from "./realtime-provider.ts";

/**
 * `{ channel, status, users }` for `channel`, kept live; null for a `null`/`undefined` channel.
 * Subscribes the channel on the shared stream while mounted.
 * @throws {TypeError} when `channel` is not a valid channel name.
 */
export function usePresence(channel: string | null | undefined): PresenceSnapshot | null {
  const client = useRealtimeClient();
  // Creating a store has no side effect; it starts with its first subscriber (the effect of
  // useSyncExternalStore) and stops with its last, so StrictMode's double mount is harmless.
  const store = useMemo(
    () => (channel ? createPresenceStore(client, channel) : null),
    [client, channel],
  );
  const subscribe = useCallback(
    (onChange: () => void) => (store ? store.subscribe(onChange) : () => {}),
    [store],
  );
  const snapshot = () => store?.getSnapshot() ?? null;
  return useSyncExternalStore(subscribe, snapshot, snapshot);
}
