/**
 * The events stream as a plain `(request, response)` handler, for `node:http`, Express, Connect
 * and anything else that hands over Node's request and response:
 *
 *   const events = createEventsHandler({ hub, authenticate: (req) => userOf(req) });
 *   app.get("/events", events);              // Express
 *   http.createServer((req, res) => events(req, res));
 *
 * It reads, checks and opens exactly as the Fastify plugin does (`stream-request.ts`); a refusal
 * is answered with the catalogue's status and JSON `{ code, message }`.
 */
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { type ConnectionLedger, MemoryConnectionLedger } from "./connection-ledger.ts";
import { AppError, appError, Errors, errorBody, fromHubError } from "./http-errors.ts";
import type { Hub } from "./hub.ts";
import type { SseStream } from "./sse-stream.ts";
import {
  type Authorize,
  DEFAULT_MAX_CHANNELS_PER_STREAM,
  DEFAULT_MAX_STREAMS_PER_USER,
  defaultAuthorize,
  hostHeaders,
  openRequestedStream,
  type RealtimeUser,
  type StreamResponse,
  streamConnection,
} from "./stream-request.ts";

export type NodeRequest = IncomingMessage | Http2ServerRequest;

export interface EventsHandlerOptions<U extends RealtimeUser, A = unknown> {
  readonly hub: Hub;
  /** Who is asking; null (or undefined) is answered 401 `RT_ERR_UNAUTHORIZED`. */
  authenticate(request: NodeRequest): U | null | undefined | Promise<U | null | undefined>;
  /** Default {@link defaultAuthorize}: the user's own `user:<id>` and every `channel:<id>`. */
  readonly authorize?: Authorize<U, NodeRequest, A> | undefined;
  /** Default 16. */
  readonly maxChannelsPerStream?: number | undefined;
  /**
   * Most streams one user holds open at once (429 past it); default 16; `false` when you count
   * them yourself. For a count over every pod, pass a shared `ledger` (`RedisConnectionLedger`
   * of `@realtime/redis`) instead.
   */
  readonly maxStreamsPerUser?: number | false | undefined;
  /** Where streams are counted per user; default one in memory for `maxStreamsPerUser`. */
  readonly ledger?: ConnectionLedger | undefined;
  /** Called with each stream opened, and what `authorize` answered for it. */
  onStream?(stream: SseStream, context: { user: U; authorization: A }): void;
  /** Called with an error that is not a refusal (answered 500 `RT_ERR_INTERNAL`). */
  onError?(error: unknown): void;
}

export type EventsHandler = (request: NodeRequest, response: StreamResponse) => Promise<void>;

/** A handler that opens `GET …?channel=<name>[&channel=…]` streams on `options.hub`. */
export function createEventsHandler<U extends RealtimeUser, A = unknown>(
  options: EventsHandlerOptions<U, A>,
): EventsHandler {
  const authorize = options.authorize ?? (defaultAuthorize as Authorize<U, NodeRequest, A>);
  const max = options.maxChannelsPerStream ?? DEFAULT_MAX_CHANNELS_PER_STREAM;
  const perUser = options.maxStreamsPerUser ?? DEFAULT_MAX_STREAMS_PER_USER;
  const ledger =
    options.ledger ?? (perUser === false ? null : new MemoryConnectionLedger({ max: perUser }));
  return async (request, response) => {
    const receivedAt = performance.now();
    try {
      if (request.method !== "GET") {
        throw appError(
          Errors.METHOD_NOT_ALLOWED,
          `${request.method} is not allowed here; use GET`,
          {
            Allow: "GET",
          },
        );
      }
      const query = new URL(request.url ?? "/", "http://localhost").searchParams;
      const { stream, user, authorization } = await openRequestedStream({
        hub: options.hub,
        request,
        channels: query.getAll("channel"),
        maxChannels: max,
        lastEventId: {
          header: request.headers["last-event-id"],
          query: query.get("lastEventId") ?? undefined,
        },
        response,
        authenticate: options.authenticate,
        authorize,
        ledger,
        receivedAt,
        connect: () => streamConnection(request, response, hostHeaders(response.getHeaders())),
      });
      options.onStream?.(stream, { user, authorization });
    } catch (thrown) {
      const error = fromHubError(thrown, "open") ?? thrown;
      if (!(error instanceof AppError)) options.onError?.(error);
      sendError(response, error instanceof AppError ? error : appError(Errors.INTERNAL));
    }
  };
}

function sendError(response: StreamResponse, error: AppError): void {
  if (response.headersSent) {
    response.end();
    return;
  }
  const body = JSON.stringify(errorBody(error));
  (response as import("node:http").ServerResponse).writeHead(error.status, {
    ...error.headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
}
