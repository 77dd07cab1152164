/**
 * Browsers do not tell an EventSource why the server refused it, yet the status decides
 * between retrying (503 draining or at capacity) and stopping (401, 403). So the client asks
 * once more with `fetch`, which sees the status and the JSON `{ code, message }` body.
 */
import type { StreamFailure } from "./reconnect-policy.ts";

/**
 * GETs `path` (the refused stream's own path and query) and describes the refusal. A network
 * error means the server is unreachable after all: a transport failure.
 */
export async function probeRefusal(
  request: (path: string, init: RequestInit) => Promise<Response>,
  path: string,
): Promise<StreamFailure> {
  const abort = new AbortController();
  try {
    const response = await request(path, {
      headers: { accept: "text/event-stream" },
      signal: abort.signal,
    });
    if (response.ok) return { kind: "transport" };
    const body = (await response.json().catch(() => null)) as {
      code?: unknown;
      message?: unknown;
    } | null;
    return {
      kind: "http",
      status: response.status,
      ...(typeof body?.code === "string" && { errorCode: body.code }),
      ...(typeof body?.message === "string" && { message: body.message }),
    };
  } catch {
    return { kind: "transport" };
  } finally {
    // A probe that succeeded opened a stream; it was only asked for its status.
    abort.abort();
  }
}
