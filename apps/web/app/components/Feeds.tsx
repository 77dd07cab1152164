/**
 * The page's subscriptions: one per joined room and the user's own channel, all on the
 * client's one stream. Each applies its events to the store the moment they arrive.
 *
 * A room opens with what was said before: its feed starts from the room's history (the last
 * page, then a few older ones if presence events crowded the messages out), and the stream
 * goes on exactly after it, so no message is missing or shown twice in between.
 */
import type { RealtimeClient } from "@realtime/client";
import { useEventChannel, useRealtimeClient } from "@realtime/react";
import { useEffect, useRef } from "react";
import { ApiError } from "../api.ts";
import { useServices } from "../context.ts";
import type { JobView } from "../jobs.ts";
import type { Session } from "../session.ts";
import type { AppStore } from "../store.ts";

/** Events of the first page when a room opens (chat and presence alike). */
export const HISTORY_LIMIT = 50;
/** Events per older page (the service's most). */
export const OLDER_LIMIT = 100;
/** Messages a room that opens should show, if its history has them… */
const WANT_MESSAGES = 30;
/** …looking at most this many pages for them. */
const MAX_PAGES = 3;

export function RoomFeed({ room }: { room: string }) {
  const { store } = useServices();
  const client = useRealtimeClient();
  const filling = useRef<AbortController | null>(null);
  useEffect(() => () => filling.current?.abort(), []);
  useEventChannel(`channel:${room}`, {
    // Read when the feed subscribes: a room kept across a reload goes on from the saved cursor.
    ...(!store.getSnapshot().rooms[room]?.loaded && { history: HISTORY_LIMIT }),
    onHistory: (page) => {
      store.history(room, page.events, page.previous);
      filling.current?.abort();
      filling.current = new AbortController();
      void fill(client, store, room, filling.current.signal);
    },
    onHistoryError: () => store.historyFailed(room),
    onEvent: (event, id) => {
      // Presence events ride the same channel; usePresence handles them.
      if (event.type === "chat") store.chat(room, event, id);
    },
    onReset: (reason) => store.roomReset(room, reason),
  });
  return null;
}

/** Reads older pages while the room shows few messages (presence crowded them out), bounded. */
async function fill(
  client: RealtimeClient,
  store: AppStore,
  room: string,
  signal: AbortSignal,
): Promise<void> {
  for (let pages = 1; pages < MAX_PAGES; pages++) {
    const current = store.getSnapshot().rooms[room];
    if (!current || current.older === null) return;
    if (current.items.filter((item) => item.kind === "message").length >= WANT_MESSAGES) return;
    try {
      const before = current.older;
      const page = await client.history(`channel:${room}`, { limit: OLDER_LIMIT, before, signal });
      if (signal.aborted) return;
      store.history(room, page.events, page.reset ? null : page.previous);
    } catch {
      // The room shows what it has; "Load older" can try again.
      return;
    }
  }
}

const JOB_EVENTS = new Set([
  "generation_progress",
  "generation_complete",
  "generation_failed",
  "generation_cancelled",
]);

export function UserFeed({ userId }: { userId: string }) {
  const { store, session } = useServices();
  useEventChannel(`user:${userId}`, {
    onEvent: (event) => {
      if (!JOB_EVENTS.has(event.type) || typeof event.jobId !== "string") return;
      // A job this page did not start (another tab, or before a reload): fetch its prompt.
      if (!store.jobEvent(event)) void refreshJob(session, store, event.jobId);
    },
    onReset: (reason) => {
      // Only jobs travel on this channel: with none on the page, nothing was missed that shows.
      if (store.getSnapshot().jobs.length === 0) return;
      store.userReset(userId, reason);
      for (const job of store.activeJobs()) void refreshJob(session, store, job.jobId);
    },
  });
  return null;
}

async function refreshJob(session: Session, store: AppStore, jobId: string): Promise<void> {
  try {
    store.jobView(await session.call<JobView>(`/api/jobs/${encodeURIComponent(jobId)}`));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) store.jobLost(jobId);
  }
}
