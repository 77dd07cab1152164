/**
 * A `reset` from the server: it could not replay what a channel sent while this page was
 * away. The page refetched what it could (presence, job states); the messages the reset
 * skipped are not read back (the gap is marked in the room), so the notice says they may be
 * missing.
 */
import { useServices } from "../context.ts";
import { resetReason } from "../format.ts";
import type { Notice } from "../store.ts";

export function Notices({ notices }: { notices: readonly Notice[] }) {
  const { store } = useServices();
  if (notices.length === 0) return null;
  return (
    <div className="notices">
      {notices.map((notice) => {
        const room = notice.channel.startsWith("channel:")
          ? notice.channel.slice("channel:".length)
          : null;
        return (
          <div key={notice.key} className="notice" role="status" data-channel={notice.channel}>
            <p>
              {room !== null ? (
                <>
                  <strong>Some messages in #{room} could not be replayed</strong>:{" "}
                  {resetReason(notice.reason)}. New messages arrive live; earlier ones may be
                  missing.
                </>
              ) : (
                <>
                  <strong>Job updates could not be replayed</strong>: {resetReason(notice.reason)}.
                  Job states were refreshed from the server.
                </>
              )}
            </p>
            <button
              type="button"
              className="notice-close"
              aria-label="Dismiss notice"
              onClick={() => store.dismiss(notice.key)}
            >
              ×
            </button>
          </div>
        );
      })}
    </div>
  );
}
