/**
 * Transport-level hardening: what the server accepts as a request body, and how long a client
 * may take to send a request.
 *
 * - Bodies are JSON, uncompressed: a `Content-Encoding` other than `identity` is refused with
 *   415 before anything is read (no inflation at all, so no decompression bomb), and so is
 *   `text/plain`, the content type a cross-site form can send without a preflight.
 * - HTTP/1.1: `headersTimeout` and `requestTimeout` bound the time to receive the headers and
 *   the whole request (slowloris); Node checks them on an interval, set here to a quarter of
 *   the headers timeout (at most 5 s) instead of 30 s. They cover receiving the request only:
 *   a GET is complete once its headers are in, so an SSE response lives on for hours.
 * - HTTP/2 has neither: a stream that has not delivered its whole body within
 *   `REQUEST_TIMEOUT_MS` is reset (the session and its other streams go on), and a session that
 *   has not completed a single request's headers within `HEADERS_TIMEOUT_MS` is closed.
 */
import type { Http2Server, Http2ServerRequest, Http2Session, ServerHttp2Stream } from "node:http2";
import { constants as h2 } from "node:http2";
import { appError, Errors } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import type { HttpConfig } from "../config.ts";

export function registerHttpHardening(app: FastifyInstance, http: HttpConfig): void {
  app.addHook("onRequest", (request, _reply, done) => {
    const encoding = request.headers["content-encoding"];
    if (encoding === undefined) return done();
    const value = String(encoding).trim().toLowerCase();
    if (value === "" || value === "identity") return done();
    done(
      appError(
        Errors.UNSUPPORTED_MEDIA_TYPE,
        "Compressed request bodies are not accepted; send the body without Content-Encoding",
      ),
    );
  });

  // Fastify parses text/plain by default; nothing here takes it, and it is CSRF's content type.
  app.removeContentTypeParser("text/plain");

  applyServerTimeouts(app.server as unknown as TimeoutServer, http);

  if (http.tls !== null || http.h2c) {
    const server = app.server as unknown as Http2Server;
    server.on("session", (session: Http2Session) => firstStreamDeadline(session, http));
    app.addHook("onRequest", async (request) => {
      const raw = request.raw as unknown as Http2ServerRequest;
      const stream = (raw as { stream?: ServerHttp2Stream }).stream;
      if (stream) bodyDeadline(stream, raw, http.requestTimeoutMs);
    });
  }
}

interface TimeoutServer {
  headersTimeout?: number;
  requestTimeout?: number;
  connectionsCheckingInterval?: number;
}

/** For node:http servers and the HTTP/1.1 side of an HTTP/2 TLS server (`allowHTTP1`). */
export function applyServerTimeouts(server: TimeoutServer, http: HttpConfig): void {
  server.requestTimeout = http.requestTimeoutMs;
  server.headersTimeout = http.headersTimeoutMs;
  // Read when the server starts listening.
  server.connectionsCheckingInterval = checkingInterval(http.headersTimeoutMs);
}

/** How often Node looks for requests past their deadline: a quarter of the headers timeout. */
export function checkingInterval(headersTimeoutMs: number): number {
  return Math.max(50, Math.min(5000, Math.floor(headersTimeoutMs / 4)));
}

function firstStreamDeadline(session: Http2Session, http: HttpConfig): void {
  const timer = setTimeout(() => session.destroy(), http.headersTimeoutMs);
  timer.unref();
  const clear = () => clearTimeout(timer);
  session.once("stream", clear);
  session.once("close", clear);
}

function bodyDeadline(stream: ServerHttp2Stream, raw: Http2ServerRequest, timeoutMs: number): void {
  // A request without a body (GET, and so every SSE stream) is complete with its headers.
  if (stream.endAfterHeaders || raw.complete || raw.readableEnded) return;
  const timer = setTimeout(() => {
    if (!raw.readableEnded && !stream.destroyed) stream.close(h2.NGHTTP2_CANCEL);
  }, timeoutMs);
  timer.unref();
  const clear = () => clearTimeout(timer);
  raw.once("end", clear);
  stream.once("close", clear);
}
