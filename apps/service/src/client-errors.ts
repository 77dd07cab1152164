/**
 * Fastify's `clientErrorHandler`: what Node's HTTP/1.1 parser refuses before any route runs —
 * headers over the size limit, headers or a body that do not arrive in time, bytes that are
 * not HTTP, a chunk extension over Node's limit — answered from the error catalogue like
 * everything else, instead of Fastify's default body (`{ error, message, statusCode }`).
 */
import type { Socket } from "node:net";
import { type ErrorEntry, Errors, errorBody } from "@realtime/server";
import type { FastifyBaseLogger } from "fastify";

/** The catalogue entry for each of Node's client errors; anything else is a 400. */
const ENTRIES: Readonly<Record<string, ErrorEntry>> = {
  HPE_HEADER_OVERFLOW: Errors.HEADERS_TOO_LARGE,
  ERR_HTTP_REQUEST_TIMEOUT: Errors.REQUEST_TIMEOUT,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: {
    ...Errors.PAYLOAD_TOO_LARGE,
    message: "A chunk extension of the request body is too large",
  },
};

const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request",
  408: "Request Timeout",
  413: "Payload Too Large",
  431: "Request Header Fields Too Large",
};

/**
 * Answers a client error on `socket` with the catalogue body, then closes the connection (the
 * parser cannot go on after one). As Node's own handler: nothing is written when the peer is
 * gone, or when a response on this connection has already begun — bytes now would corrupt it.
 * Logged at debug with the error's code only: the error also holds the raw bytes received,
 * which may include an `Authorization` header.
 */
export function clientErrorHandler(
  this: { readonly log: FastifyBaseLogger },
  error: Error & { readonly code?: string },
  socket: Socket,
): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const entry = ENTRIES[error.code ?? ""] ?? {
    ...Errors.BAD_REQUEST,
    message: "The request is not valid HTTP",
  };
  this.log.debug({ code: error.code, status: entry.status }, "client error");
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    const body = JSON.stringify(errorBody(entry));
    socket.write(
      `HTTP/1.1 ${entry.status} ${REASONS[entry.status] ?? "Error"}\r\n` +
        "Content-Type: application/json; charset=utf-8\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        "Cache-Control: no-store\r\n" +
        "Connection: close\r\n\r\n" +
        body,
    );
  }
  socket.destroy(error);
}
