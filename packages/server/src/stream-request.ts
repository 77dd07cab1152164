/**
 * What every way of serving a stream shares, whatever the framework: the `@realtime/fastify`
 * plugin (and through it the service) and the `node:http` handler (`node-handler.ts`) read the
 * same request (`?channel=…&channel=…`, `Last-Event-ID` or `?lastEventId=`), ask the same
 * access question and open the stream on the hub the same way. Everything that can fail is
 * checked before the first byte, so a refusal is a plain JSON error from the catalogue
 * (`http-errors.ts`); once the stream is ready, the hub takes the raw response over.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { type ChannelName, parseChannel, printable } from "@realtime/protocol";
import {
  type Connection,
  Http2StreamConnection,
  NodeHttpConnection,
  SSE_HEADERS,
} from "./connection.ts";
import type { ConnectionLedger } from "./connection-ledger.ts";
import { appError, Errors } from "./http-errors.ts";
import type { Hub } from "./hub.ts";
import type { SseStream } from "./sse-stream.ts";

/** Who opens a stream or publishes, as the host's authentication proves it. */
export interface RealtimeUser {
  /** The user's id: `user:<id>` is this user's private channel. */
  readonly id: string;
  /** A display name (presence shows it); default the id. */
  readonly name?: string | undefined;
  /**
   * When the user's credentials expire, in ms since the epoch: the stream is closed then with
   * `close` 3005 (`token_expired`) and the client reconnects with fresh ones. Default never.
   */
  readonly expiresAt?: number | undefined;
}

/** What a user asks to do on channels: receive their events, or publish to them. */
export type ChannelAction = "subscribe" | "publish";

/** The question an {@link Authorize} hook answers. */
export interface AccessRequest<U extends RealtimeUser, R> {
  readonly user: U;
  readonly channels: readonly ChannelName[];
  readonly action: ChannelAction;
  /** The framework's request (Fastify's, or Node's `IncomingMessage`). */
  readonly request: R;
}

/**
 * The host's authorisation: `false` (or a thrown `AppError`, answered as it is) refuses the
 * request with 403 `RT_ERR_CHANNEL_FORBIDDEN`; anything else allows it, and is handed to the
 * host's `onStream` hook with the stream (to watch a grant, say).
 */
export type Authorize<U extends RealtimeUser, R, A = unknown> = (
  access: AccessRequest<U, R>,
) => A | false | Promise<A | false>;

/** How many channels one stream may carry unless the host says otherwise. */
export const DEFAULT_MAX_CHANNELS_PER_STREAM = 16;

/**
 * The rule when the host gives no {@link Authorize}: a user subscribes to their own
 * `user:<id>` and to every `channel:<id>` room, and publishes nowhere over HTTP (the host's
 * server code publishes; give an `authorize` to let users publish).
 */
export function defaultAuthorize(access: AccessRequest<RealtimeUser, unknown>): boolean {
  if (access.action === "publish") return false;
  return access.channels.every(
    (channel) => channel.startsWith("channel:") || channel === `user:${access.user.id}`,
  );
}

/** Runs `authorize`; a `false` becomes the catalogue's 403 naming the channels. */
export async function requireAccess<U extends RealtimeUser, R, A>(
  authorize: Authorize<U, R, A>,
  access: AccessRequest<U, R>,
): Promise<A> {
  const decision = await authorize(access);
  if (decision === false) {
    const names = access.channels.map((channel) => printable(channel)).join(", ");
    throw appError(
      Errors.CHANNEL_FORBIDDEN,
      `${access.action === "publish" ? "publishing to" : "subscribing to"} ${names} is not allowed`,
    );
  }
  return decision;
}

/**
 * The channels a stream request names (`?channel=` once or repeated), parsed: at least one, at
 * most `max`, each a valid name, else the catalogue's 400.
 */
export function parseStreamChannels(
  raw: string | readonly string[] | undefined,
  max: number,
): ChannelName[] {
  const names = raw === undefined ? [] : typeof raw === "string" ? [raw] : raw;
  if (names.length === 0) throw appError(Errors.BAD_CHANNEL, "at least one channel is required");
  if (names.length > max) {
    throw appError(Errors.TOO_MANY_CHANNELS, `a stream carries at most ${max} channels`);
  }
  return names.map((name) => {
    const parsed = parseChannel(name);
    if (!parsed.ok) {
      throw appError(Errors.BAD_CHANNEL, `${parsed.reason}: "${printable(name)}"`);
    }
    return parsed.channel.name;
  });
}

/**
 * Where the stream resumes from: the `Last-Event-ID` header (what `EventSource` sends on a
 * reconnect), else the `lastEventId` query parameter (a first open that continues a cursor the
 * page kept), else null. An empty header means "no cursor".
 */
export function streamCursor(
  header: string | readonly string[] | undefined,
  query: string | undefined,
): string | null {
  const value = typeof header === "string" ? header : header?.[0];
  return value || query || null;
}

/**
 * The headers the host set on its framework's reply before the stream opened (CORS, security
 * headers), as single lines for the stream's first write: without `connection` (no HTTP/2
 * stream may carry it) and `set-cookie` (which cannot be one line; set cookies on the login
 * response, not on a stream).
 */
export function hostHeaders(
  headers: Readonly<Record<string, number | string | readonly string[] | undefined>>,
): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === "connection" || name === "set-cookie") continue;
    kept[name] = typeof value === "object" ? value.join(", ") : String(value);
  }
  return kept;
}

/** The response a stream is written to: HTTP/1.1, or HTTP/2 (compatibility API). */
export type StreamResponse = ServerResponse | Http2ServerResponse;

/**
 * The {@link Connection} for a request and its response, with `headers` (the host's — CORS,
 * security headers — then the stream's own) on its first write.
 */
export function streamConnection(
  request: IncomingMessage | Http2ServerRequest,
  response: StreamResponse,
  headers: Readonly<Record<string, string>> = {},
): Connection {
  const all = { ...headers, ...SSE_HEADERS };
  if ("stream" in request && request.stream) {
    return new Http2StreamConnection(request.stream, all, response as Http2ServerResponse);
  }
  return new NodeHttpConnection(response as ServerResponse, all);
}

export interface OpenUserStream {
  readonly hub: Hub;
  readonly user: RealtimeUser;
  readonly channels: readonly ChannelName[];
  readonly cursor: string | null;
  /** The response: its `close` before the stream is connected means the client went away. */
  readonly response: StreamResponse;
  /** Takes the response over from the framework and wraps it (see {@link streamConnection}). */
  readonly connect: () => Connection;
  /** When the request arrived (`performance.now()`), for the stream-open time; see `OpenStreamRequest`. */
  readonly receivedAt?: number | undefined;
}

/** Opens `user`'s stream on the hub; rejects with a `HubError` when the hub refuses it. */
export function openUserStream(open: OpenUserStream): Promise<SseStream> {
  const { hub, user, response } = open;
  const abort = new AbortController();
  // The response's close (not the request's, which fires once the request is read) says the
  // client went away while the stream was being prepared. Removed once the stream is connected
  // (the connection reports its close to the hub from then on): left in place, it would hold
  // the controller and its closure for the whole life of the stream.
  const abandoned = () => abort.abort();
  if (responseClosed(response)) abort.abort();
  else response.once("close", abandoned);
  return hub.open({
    userId: user.id,
    userName: user.name ?? user.id,
    channels: open.channels,
    cursor: open.cursor,
    expiresAt: user.expiresAt,
    signal: abort.signal,
    ...(open.receivedAt !== undefined && { receivedAt: open.receivedAt }),
    connect: () => {
      response.off("close", abandoned);
      return open.connect();
    },
  });
}

/** A stream request as a framework hands it over, for {@link openRequestedStream}. */
export interface StreamRequest<U extends RealtimeUser, R, A> {
  readonly hub: Hub;
  /** The framework's request, for `authenticate` and `authorize`. */
  readonly request: R;
  /** The `channel` query parameter(s). */
  readonly channels: string | readonly string[] | undefined;
  readonly maxChannels: number;
  /** The `Last-Event-ID` header and the `lastEventId` query parameter. */
  readonly lastEventId: {
    header: string | readonly string[] | undefined;
    query: string | undefined;
  };
  readonly response: StreamResponse;
  authenticate(request: R): U | null | undefined | Promise<U | null | undefined>;
  readonly authorize: Authorize<U, R, A>;
  /**
   * Where each user's open streams are counted: past its cap a request is refused with 429
   * `RT_ERR_TOO_MANY_CONNECTIONS`, so one user cannot take every slot of the pod. Null: no
   * per-user cap (the host counts them itself).
   */
  readonly ledger: ConnectionLedger | null;
  readonly connect: () => Connection;
  /**
   * When the request arrived (`performance.now()`): the hub reports the time from then to the
   * stream's first write (`Metrics.streamOpened`). Absent: not reported.
   */
  readonly receivedAt?: number | undefined;
}

/**
 * Serves a stream request, in the one order every way of serving a stream keeps: the channels
 * parsed (400), the user authenticated (401), access asked for every channel before anything
 * is subscribed or replayed — a resume is a new open, checked the same (403) — then the stream
 * opened on the hub (its refusals as `HubError`s). Rejects with the refusal; resolves with the
 * stream, its user and what `authorize` answered.
 */
export async function openRequestedStream<U extends RealtimeUser, R, A>(
  open: StreamRequest<U, R, A>,
): Promise<{ stream: SseStream; user: U; authorization: A }> {
  const channels = parseStreamChannels(open.channels, open.maxChannels);
  const user = await open.authenticate(open.request);
  if (!user) throw appError(Errors.UNAUTHORIZED);
  // A stream opened now would be closed at once (3005) and reopened with the same credentials.
  if (user.expiresAt !== undefined && user.expiresAt <= open.hub.now()) {
    throw appError(Errors.TOKEN_EXPIRED, "The credentials have expired; refresh them first");
  }
  const authorization = await requireAccess(open.authorize, {
    user,
    channels,
    action: "subscribe",
    request: open.request,
  });
  if (open.ledger !== null) await admit(open.ledger, user, open.response);
  const stream = await openUserStream({
    hub: open.hub,
    user,
    channels,
    cursor: streamCursor(open.lastEventId.header, open.lastEventId.query),
    response: open.response,
    connect: open.connect,
    receivedAt: open.receivedAt,
  });
  return { stream, user, authorization };
}

/** Most streams one user holds open at once on the plugin and the handler, unless told. */
export const DEFAULT_MAX_STREAMS_PER_USER = 16;

/**
 * Takes one of `user`'s stream slots in `ledger` for as long as `response` is open; refuses
 * with 429 when the user holds them all.
 */
async function admit(
  ledger: ConnectionLedger,
  user: RealtimeUser,
  response: StreamResponse,
): Promise<void> {
  const lease = await ledger.acquire(user.id);
  if (lease === null) {
    throw appError(Errors.TOO_MANY_CONNECTIONS, "Too many open streams for this user", {
      "Retry-After": String(1 + Math.floor(Math.random() * 10)),
    });
  }
  releaseOnClose(response, lease);
}

/**
 * Whether `response` is closed already: its client went away (or it was answered) while the
 * request was being checked, so its `close` event is past. HTTP/2's compatibility response
 * has no `closed`/`destroyed` of its own: its stream says.
 */
export function responseClosed(response: StreamResponse): boolean {
  if ("stream" in response && response.stream) {
    return response.stream.destroyed || response.stream.closed;
  }
  const raw = response as ServerResponse;
  return raw.closed || raw.destroyed;
}

/**
 * Calls `release` (idempotent) when `response` closes — when the stream ends, or when a
 * refusal's response is done — or at once when it is closed already. `on`, not `once`: a
 * `once` wrapper would live as long as the stream. Register it before the stream connects:
 * an HTTP/1.1 stream's socket is then taken from its response (`NodeHttpConnection`), which
 * calls the response's `close` listeners when the socket closes.
 */
export function releaseOnClose(response: StreamResponse, release: () => void): void {
  if (responseClosed(response)) release();
  else response.on("close", release);
}
