/**
 * The transport seam: the client needs only this much of an `EventSource`, so the browser's own,
 * the `eventsource` package in Node and a test fake all fit.
 */

/** `EventSource.readyState` once the connection failed or was closed. */
export const EVENT_SOURCE_CLOSED = 2;

/** The part of the WHATWG `EventSource` the client uses. */
export interface EventSourceLike {
  /** 0 connecting, 1 open, 2 closed. */
  readonly readyState: number;
  /**
   * Not in the WHATWG interface (browsers and the `eventsource` package keep it internal), but
   * some implementations expose it. When present, the client reads it on every callback,
   * because an id-only block updates it without dispatching any event.
   */
  readonly lastEventId?: string;
  addEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

/** What the client hands its {@link EventSourceFactory} for every stream it opens. */
export interface EventSourceInit {
  /** Send cookies cross-origin (`RealtimeClientOptions.withCredentials`). */
  readonly withCredentials: boolean;
  /** What `getToken` returned for this connection, or null without `getToken`. */
  readonly token: string | null;
}

/** Returns the bearer token for the next connection or request, if any. */
export type TokenGetter = () => string | null | undefined | Promise<string | null | undefined>;

/** Opens one stream. Called once per connection attempt, never reused. */
export type EventSourceFactory = (url: string, init: EventSourceInit) => EventSourceLike;

/** A `fetch` as the client calls it. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * The init an `EventSource` implementation passes to its `fetch` option; only the headers are
 * touched, the rest (signal, mode, credentials, cache) is passed through as it is.
 */
interface ImplementationFetchInit {
  headers?: Record<string, string>;
}

/**
 * An `EventSource` class that takes a `fetch` option, such as the one of the `eventsource`
 * package (v3+).
 */
export type FetchingEventSourceClass = new (
  url: string,
  init: {
    withCredentials?: boolean;
    fetch?: (input: string | URL, init: ImplementationFetchInit) => Promise<Response>;
  },
) => EventSourceLike;

/**
 * Browsers' `EventSource`: no headers, so identity travels in the HttpOnly session cookie
 * (same-origin, or cross-origin with `withCredentials`).
 * @throws {TypeError} when there is no global `EventSource` (Node: pass `eventSource`). The client
 *   calls this at its first connection, never when it is created (server-side rendering).
 */
export function globalEventSource(): EventSourceFactory {
  const Native = globalThis.EventSource;
  if (typeof Native !== "function") {
    throw new TypeError(
      "no global EventSource: pass `eventSource` (in Node: withBearerToken(EventSource) from the `eventsource` package)",
    );
  }
  return (url, { withCredentials }) => new Native(url, { withCredentials });
}

/**
 * A factory for Node and other non-browser runtimes: opens streams with `EventSourceClass`
 * (e.g. the `eventsource` package) and sends the token from `getToken` as
 * `Authorization: Bearer …` through its `fetch` option.
 *
 * @param fetchImpl - the `fetch` to wrap. Default: the global `fetch`.
 */
export function withBearerToken(
  EventSourceClass: FetchingEventSourceClass,
  fetchImpl: FetchLike = (input, init) => globalThis.fetch(input, init),
): EventSourceFactory {
  return (url, { withCredentials, token }) =>
    new EventSourceClass(url, {
      withCredentials,
      fetch: (input, init) => {
        const headers = { ...init.headers };
        if (token) headers.Authorization = `Bearer ${token}`;
        return fetchImpl(String(input), { ...(init as RequestInit), headers });
      },
    });
}
