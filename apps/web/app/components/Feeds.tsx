/**
 * The page's subscriptions: one per joined room and the user's own channel, all on the
 * client's one stream. Each applies its events to the store the moment they arrive.
 */
import { useEventChannel } from "@realtime/react";
import { ApiError } from "../api.ts";
import { useServices } from "../context.ts";
import type { JobView } from "../jobs.ts";
import type { Session } from "../session.ts";
import type { AppStore } from "../store.ts";

export function RoomFeed({ room }: { room: string }) {
  const { store } = useServices();
  useEventChannel(`channel:${room}`, {
    onEvent: (event) => {
      // Presence events ride the same channel; usePresence handles them.
      if (event.type === "chat") store.chat(room, event);
    },
    onReset: (reason) => store.roomReset(room, reason),
  });
  return null;
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
