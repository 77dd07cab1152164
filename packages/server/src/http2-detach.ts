/**
 * Lets go of node:http2's compatibility request and response of an SSE stream once the
 * stream has responded: the stream is written to through its core API from then on
 * (`Http2StreamConnection`), and nothing needs them, but the stream keeps both (and, through
 * them, the request's headers) for its whole life. node:http2 drops them itself when the
 * stream closes (`onStreamCloseRequest`, `onStreamCloseResponse` in `internal/http2/compat`):
 * this does the same, early.
 *
 * It also takes off the layer's stream listeners that do nothing without a request and a
 * response (they stay until the stream closes otherwise): each event that has two or three
 * listeners keeps its list as an array (a `push` onto two grows it to 19 slots, ~250 B for
 * `close`). Only down to one listener per event, never none: an event name deleted from the
 * stream's `_events` turns that object into a dictionary, bigger than what was saved. The
 * caller adds its own `close` and `drain` listeners first.
 *
 * Node internals, all here: the stream's `request`, `response` (and `proxySocket`) symbol
 * properties and the compatibility layer's listeners, found by their names. Each is checked
 * first; when one is not as expected the stream keeps it, as before (correct, only heavier).
 * `http2-detach.test.ts` fails when Node changes them.
 */
import type { Http2ServerResponse, ServerHttp2Stream } from "node:http2";

/** The stream's own symbol property described `description`. */
function symbolOf(stream: ServerHttp2Stream, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(stream).find((symbol) => symbol.description === description);
}

/**
 * Detaches `res` (and its request) from `stream`. Returns the listeners of `res`'s `close` (the
 * leases taken for the stream's life), which `res` will now never emit: the caller calls them
 * when the stream closes. Null, with nothing touched, when `res` cannot be detached.
 */
export function detachCompat(
  stream: ServerHttp2Stream,
  res: Http2ServerResponse,
): (() => void)[] | null {
  const kRequest = symbolOf(stream, "request");
  const kResponse = symbolOf(stream, "response");
  const kProxySocket = symbolOf(stream, "proxySocket");
  const fields = stream as unknown as Record<symbol, unknown>;
  if (kRequest === undefined || kResponse === undefined) return null;
  if (fields[kResponse] !== res || fields[kRequest] !== res.req || stream.closed) return null;
  const trailers = stream
    .listeners("wantTrailers")
    .filter((listener) => listener.name === "onStreamTrailersReady");
  if (trailers.length !== 1) return null;
  // As onStreamCloseRequest and onStreamCloseResponse do: the compatibility layer's stream
  // listeners find no request or response and do nothing.
  stream.removeListener("wantTrailers", trailers[0] as () => void);
  fields[kRequest] = undefined;
  fields[kResponse] = undefined;
  if (kProxySocket !== undefined) fields[kProxySocket] = null;
  const closeListeners = res.listeners("close") as (() => void)[];
  res.removeAllListeners("close");
  // Safe now that they find no request or response: `aborted` and `timeout` keep one that
  // does nothing (`onStreamTimeoutRequest` would throw without a request: replaced).
  dropListeners(stream, "close", ["onStreamCloseRequest", "onStreamCloseResponse"]);
  dropListeners(stream, "drain", ["onStreamDrain"]);
  dropListeners(stream, "aborted", ["onStreamAbortedResponse"]);
  if (namedListeners(stream, "timeout", TIMEOUT_LISTENERS) !== null) {
    stream.on("timeout", ignore);
    dropListeners(stream, "timeout", TIMEOUT_LISTENERS);
  }
  return closeListeners;
}

const TIMEOUT_LISTENERS = ["onStreamTimeoutRequest", "onStreamTimeoutResponse"];

function ignore(): void {}

/** `stream`'s listeners of `event` called `names`, one each; null when not exactly so. */
function namedListeners(
  stream: ServerHttp2Stream,
  event: string,
  names: readonly string[],
): (() => void)[] | null {
  const listeners = stream.listeners(event) as (() => void)[];
  const found: (() => void)[] = [];
  for (const name of names) {
    const matching = listeners.filter((listener) => listener.name === name);
    if (matching.length !== 1) return null;
    found.push(matching[0] as () => void);
  }
  return found;
}

/** Removes the compatibility layer's listeners `names` of `event`, if at least one other stays. */
function dropListeners(stream: ServerHttp2Stream, event: string, names: readonly string[]): void {
  const found = namedListeners(stream, event, names);
  if (found === null || stream.listenerCount(event) <= found.length) return;
  for (const listener of found) stream.removeListener(event, listener);
}
