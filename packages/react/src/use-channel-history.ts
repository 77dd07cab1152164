/**
 * A channel's recent events and then its live ones, as one list: what a chat view shows when a
 * room opens (`createChannelHistory` in @realtime/client, over the shared stream).
 */
import {
  type ChannelHistoryOptions,
  createChannelHistory,
  type HistoryEvent,
} from "@realtime/client";
import type { RealtimeEvent } from "@realtime/protocol";
import { useCallback, useMemo, useSyncExternalStore } from "react";
import { useRealtimeClient } from "./realtime-provider.ts";

export interface ChannelHistory<E extends RealtimeEvent = RealtimeEvent> {
  /** Oldest first: the last page read, older pages loaded since, then every live event. */
  readonly events: readonly HistoryEvent<E>[];
  /** The first page is on its way. */
  readonly loading: boolean;
  /** Why the last read failed, else null (a failed first page: live events only). */
  readonly error: unknown;
  /** History holds older events: `loadOlder()` reads them. */
  readonly hasOlder: boolean;
  /** An older page is on its way. */
  readonly loadingOlder: boolean;
  /** Puts the page before the oldest event in front; resolves when it is in. */
  readonly loadOlder: () => Promise<void>;
}

const NONE: ChannelHistory<never> = {
  events: [],
  loading: false,
  error: null,
  hasOlder: false,
  loadingOlder: false,
  loadOlder: () => Promise.resolve(),
};

/**
 * `channel`'s last events (`limit`, default 50; `types` to keep only some, reading a few older
 * pages when others crowded them out), then its live ones, while mounted. `null`/`undefined`:
 * nothing. The options are read when the channel changes (as data: a new array with the same
 * types does not start over).
 * @throws {TypeError} when `channel` is not a valid channel name.
 */
export function useChannelHistory<E extends RealtimeEvent = RealtimeEvent>(
  channel: string | null | undefined,
  options: ChannelHistoryOptions = {},
): ChannelHistory<E> {
  const client = useRealtimeClient();
  const { limit, maxPages, maxEvents } = options;
  const types = options.types?.join("\n");
  // Creating a store has no side effect; it starts with its first subscriber (the effect of
  // useSyncExternalStore) and stops with its last, so StrictMode's double mount is harmless.
  const store = useMemo(
    () =>
      channel
        ? createChannelHistory<E>(client, channel, {
            ...(limit !== undefined && { limit }),
            ...(maxPages !== undefined && { maxPages }),
            ...(maxEvents !== undefined && { maxEvents }),
            ...(types !== undefined && { types: types.split("\n") }),
          })
        : null,
    [client, channel, limit, maxPages, maxEvents, types],
  );
  const subscribe = useCallback(
    (onChange: () => void) => (store ? store.subscribe(onChange) : () => {}),
    [store],
  );
  const snapshot = () => store?.getSnapshot() ?? null;
  const current = useSyncExternalStore(subscribe, snapshot, snapshot);
  return useMemo(
    () =>
      current && store
        ? {
            events: current.events,
            loading: current.loading,
            error: current.error,
            hasOlder: current.hasOlder,
            loadingOlder: current.loadingOlder,
            loadOlder: store.loadOlder,
          }
        : NONE,
    [current, store],
  );
}
