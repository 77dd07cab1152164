/** localStorage / sessionStorage that never throw (private mode, disabled storage, quota). */

function safe(kind: "localStorage" | "sessionStorage"): Storage | null {
  try {
    return globalThis[kind] ?? null;
  } catch {
    return null;
  }
}

export function readJson<T>(kind: "localStorage" | "sessionStorage", key: string): T | null {
  try {
    const raw = safe(kind)?.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export function writeJson(
  kind: "localStorage" | "sessionStorage",
  key: string,
  value: unknown,
): void {
  try {
    const storage = safe(kind);
    if (!storage) return;
    if (value === null || value === undefined) storage.removeItem(key);
    else storage.setItem(key, JSON.stringify(value));
  } catch {
    // Full or disabled: the app works without it.
  }
}
