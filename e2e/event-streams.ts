/**
 * Server side of the end-to-end tests: watches the SSE requests that reach the service's own
 * HTTP server, and cuts them from the server end.
 *
 * Fastify hooks cannot be added once the app listens, but the underlying node:http server is
 * an ordinary EventEmitter: a second "request" listener sees every request (with the headers
 * exactly as they arrived) next to Fastify's, without changing how it is handled.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";

export interface EventStreamRequest {
  readonly url: string;
  /** The `Last-Event-ID` header as the server received it (null when absent). */
  readonly lastEventId: string | null;
  readonly response: ServerResponse;
}

export interface EventStreamWatch {
  /** Every `GET /api/events` so far, oldest first. */
  readonly requests: readonly EventStreamRequest[];
  /**
   * Ends every open stream from the server: destroys its response, which closes the TCP
   * connection under it — the same call the hub makes when it drops a slow client
   * (`NodeHttpConnection.destroy()`), and what a client sees when a pod dies or a proxy cuts
   * an idle connection. The service keeps accepting new streams. Returns how many it cut.
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
    });
  };
  server.on("request", onRequest);
  return {
    requests,
    cutOpenStreams() {
      let cut = 0;
      for (const { response } of requests) {
        if (response.destroyed || response.writableEnded) continue;
        response.destroy();
        cut++;
      }
      return cut;
    },
    stop: () => server.off("request", onRequest),
  };
}
