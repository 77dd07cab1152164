/** Small display helpers. */

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : time.format(date);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A stable hue per user id, for avatars. */
export function hueOf(id: string): number {
  let hash = 0;
  for (let i = 0; i < id.length; i++) hash = (hash * 31 + id.charCodeAt(i)) >>> 0;
  return hash % 360;
}

export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [name.trim()];
  return letters
    .map((word) => Array.from(word ?? "")[0] ?? "")
    .join("")
    .toUpperCase()
    .slice(0, 2);
}

/** Why a stream could not replay a channel, in plain words. */
export function resetReason(reason: string): string {
  switch (reason) {
    case "trimmed":
      return "the server no longer keeps messages that old";
    case "epoch_changed":
      return "the server's history was lost (it restarted empty)";
    case "unknown_cursor":
      return "the server did not recognise where this page left off";
    case "gap":
      return "some were lost between servers";
    default:
      return `the server said "${reason}"`;
  }
}
