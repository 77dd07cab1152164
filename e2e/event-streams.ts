/**
 * Server side of the end-to-end tests: watches the SSE requests that reach the service's own
 * HTTP server, and cuts them from the server end.
 *
 * Fastify hooks cannot be added once the app listens, but the underlying node:http server is
 * an ordinary EventEmitter: a second "request" listener sees every request (with the headers
 * exactly as they arrived) next to Fastify's, without changing how it is handled.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface EventStreamRequest {
  readonly url: string;
  /** The `Last-Event-ID` header as the server received it (null when absent). */
  readonly lastEventId: string | null;
  readonly response: ServerResponse;
  /** The HTTP/1.1 connection it came on (an HTTP/2 stream has none of its own: null). */
  readonly socket: Socket | null;
}

export interface EventStreamWatch {
  /** Every `GET /api/events` so far, oldest first. */
  readonly requests: readonly EventStreamRequest[];
  /**
   * Ends every open stream from the server: destroys its TCP connection (on HTTP/2, its
   * response) — what the hub does when it drops a slow client (`NodeHttpConnection.destroy()`:
   * once the head is out, the socket is the stream's, no longer the response's), and what a
   * client sees when a pod dies or a proxy cuts an idle connection. The service keeps accepting new streams. Returns how many it cut.
   */
  cutOpenStreams(): number;
  stop(): void;
}

export function watchEventStreams(server: Server): EventStreamWatch {
  const requests: EventStreamRequest[] = [];
  const onRequest = (request: IncomingMessage, response: ServerResponse) => {
    if (!request.url?.startsWith("/api/events")) return;
    const header = request.headers["last-event-id"];
    requests.push({
      url: request.url,
      lastEventId: (Array.isArray(header) ? header[0] : header) ?? null,
      response,
      socket: "stream" in request ? null : request.socket,
    });
  };
  server.on("request", onRequest);
  return {
    requests,
    cutOpenStreams() {
      let cut = 0;
      for (const { response, socket } of requests) {
        if (socket !== null) {
          if (socket.destroyed) continue;
          socket.destroy();
        } else {
          if (response.destroyed || response.writableEnded) continue;
          response.destroy();
        }
        cut++;
      }
      return cut;
    },
    stop: () => server.off("request", onRequest),
  };
}
