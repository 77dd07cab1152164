/**
 * The spec's hook, `useEventChannel(channel, { onEvent })`, over the shared client: every
 * component subscribes on the client's one stream. Unlike the spec's sample, the connection
 * depends only on the channel: a new `onEvent` on every render is read through a ref and never
 * reconnects, and reconnecting is the client's business, not React state.
 *
 * With `history`, the subscription starts from the channel's last events: `onHistory` gets
 * them, then `onEvent` every later one, without gap or duplicate.
 */
import type { HistoryPage } from "@realtime/client";
import type { RealtimeEvent } from "@realtime/protocol";
import { useEffect, useInsertionEffect, useRef } from "react";
import { useRealtimeClient } from "./realtime-provider.ts";

export interface UseEventChannelOptions<E extends RealtimeEvent = RealtimeEvent> {
  /**
   * Every application event of the channel, in order, each once. `id` is the event's id on the
   * channel (as on a history page). The latest function is always called.
   */
  readonly onEvent: (event: E, id: string | null) => void;
  /**
   * The server could not replay what the channel sent while the client was away: refetch the
   * state it feeds (`reason`: `trimmed`, `epoch_changed`, `unknown_cursor`, `gap`). Default: none.
   */
  readonly onReset?: (reason: string) => void;
  /**
   * Start from the channel's last `history` events (1–100) instead of from now: `onHistory`
   * gets them before any `onEvent`. Read when the channel is subscribed (on mount or when
   * `channel` changes). Default: none.
   */
  readonly history?: number;
  /** The page the subscription starts after (with `history`). */
  readonly onHistory?: (page: HistoryPage<E>) => void;
  /** The page could not be read (with `history`): the subscription goes on live from now. */
  readonly onHistoryError?: (error: unknown) => void;
}

/**
 * Subscribes the component to `channel` (`user:<id>` or `channel:<id>`) while it is mounted.
 * `null` or `undefined` subscribes to nothing (e.g. until the user id is known).
 * @throws {TypeError} (from the effect) when `channel` is not a valid channel name.
 */
export function useEventChannel<E extends RealtimeEvent = RealtimeEvent>(
  channel: string | null | undefined,
  options: UseEventChannelOptions<E>,
): void {
  const client = useRealtimeClient();
  const latest = useRef(options);
  // Updated before any effect or event can run, and never during render (which may be
  // discarded under concurrent rendering).
  useInsertionEffect(() => {
    latest.current = options;
  });
  useEffect(() => {
    if (!channel) return;
    const { history } = latest.current;
    const subscription = client.subscribe(
      channel,
      {
        onEvent: (event, id) => latest.current.onEvent(event as E, id),
        onReset: (reason) => latest.current.onReset?.(reason),
        onHistory: (page) => latest.current.onHistory?.(page as HistoryPage<E>),
        onHistoryError: (error) => latest.current.onHistoryError?.(error),
      },
      history === undefined ? {} : { history },
    );
    return () => subscription.unsubscribe();
  }, [client, channel]);
}
