/**
 * Takes the socket of an HTTP/1.1 SSE response away from node:http once the response's head
 * is out, as node:http itself does for an `upgrade`: the server's listeners come off the
 * socket, its llhttp parser goes back to the pool (it is no longer consumed from the socket
 * and no longer in the server's list of connections), and the response is detached from the
 * socket. Nothing then holds the request, the response or the parser's state: an idle stream
 * costs its socket and the stream's own state, not a whole HTTP exchange kept for keep-alive.
 *
 * This relies on node:http internals (no public API detaches a response that is not an
 * upgrade), all of them here: `socket.parser`, `parser.incoming`, the names of the server's
 * socket listeners, `_http_common`'s `freeParser` and `ServerResponse#detachSocket` (the
 * last two are what node:http's own upgrade path calls). Every one is checked before
 * anything is touched: when one is not as expected — another Node version, a pipelined
 * request behind this one, a request whose body is still arriving — {@link detachable} says
 * no and the response stays with node:http, as it was before this module (correct, only
 * heavier). `http1-detach.test.ts` fails loudly when Node changes any of them.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** The parser node:http hangs on each server socket (`_http_common`'s HTTPParser). */
interface ServerParser {
  incoming: IncomingMessage | null;
  finish(): unknown;
}

interface ServerSocket extends Socket {
  parser?: ServerParser | null;
  _httpMessage?: ServerResponse | null;
}

type FreeParser = (parser: ServerParser, req: IncomingMessage, socket: Socket) => void;

/** `_http_common`'s `freeParser`, or null when this Node has none. */
const freeParser: FreeParser | null = (() => {
  try {
    const common = process.getBuiltinModule("_http_common") as { freeParser?: unknown };
    return typeof common?.freeParser === "function" ? (common.freeParser as FreeParser) : null;
  } catch {
    return null;
  }
})();

/**
 * The listeners node:http's server puts on each socket (`connectionListenerInternal` in
 * `_http_server.js`), by event and function name. The bound ones hold the parser's state,
 * and through it the request: these are what the upgrade path removes. `timeout`'s
 * (`socketOnTimeout`, unbound) is left: with no request or response left it destroys the
 * socket when the server's `timeout` passes, as before.
 */
export const SERVER_SOCKET_LISTENERS: Readonly<Record<string, string>> = {
  data: "bound socketOnData",
  end: "bound socketOnEnd",
  close: "bound socketOnClose",
  drain: "bound socketOnDrain",
  error: "socketOnError",
  resume: "onSocketResume",
  pause: "onSocketPause",
};

// biome-ignore lint/suspicious/noExplicitAny: an EventEmitter listener, as Node types it
type Listener = (...args: any[]) => void;

/**
 * The server's listeners on `socket`, one per event of {@link SERVER_SOCKET_LISTENERS}, or
 * null unless each event has exactly one.
 */
function serverListeners(socket: Socket): [event: string, listener: Listener][] | null {
  const found: [string, Listener][] = [];
  for (const event in SERVER_SOCKET_LISTENERS) {
    const name = SERVER_SOCKET_LISTENERS[event];
    let match: Listener | null = null;
    for (const listener of socket.listeners(event) as Listener[]) {
      if (listener.name !== name) continue;
      if (match !== null) return null;
      match = listener;
    }
    if (match === null) return null;
    found.push([event, match]);
  }
  return found;
}

/** {@link detachable}'s checks but the listeners'. */
function detachableExchange(res: ServerResponse): boolean {
  const socket = res.socket as ServerSocket | null;
  const req = res.req;
  if (freeParser === null || typeof res.detachSocket !== "function") return false;
  if (!socket || socket.destroyed || !socket.writable || socket._httpMessage !== res) return false;
  const parser = socket.parser;
  return !!parser && parser.incoming === req && req.complete && typeof parser.finish === "function";
}

/**
 * Whether `res`'s socket can be taken from node:http once its head is written: `res` is the
 * socket's current response, the request is complete (no body still to read) and the last
 * one the parser has seen (nothing pipelined behind it), and every internal this module uses
 * is where it expects it. Call before `writeHead`.
 */
export function detachable(res: ServerResponse): boolean {
  return detachableExchange(res) && serverListeners(res.socket as Socket) !== null;
}

/**
 * Takes `res`'s socket from node:http (see the module's comment); `res` must be
 * {@link detachable} and its head written and handed to the socket. Returns the socket and
 * the listeners of `res`'s `close` (leases taken for the stream's life, say), which `res`
 * will now never emit: the caller calls them when the socket closes. From then on the
 * socket is the caller's: it must handle the socket's `error` and `end` (this adds nothing).
 * Null, with nothing touched, when `res` cannot be detached after all.
 */
export function detachSocket(
  res: ServerResponse,
): { socket: Socket; closeListeners: (() => void)[] } | null {
  if (!res.headersSent || !detachableExchange(res)) return null;
  const socket = res.socket as ServerSocket;
  // The head must have been handed to the socket, not held by the response (its
  // `writableLength` counts its own buffers plus the socket's queue, which on TLS still
  // holds the head: later writes to the same socket go after it).
  if (res.writableLength !== socket.writableLength) return null;
  const listeners = serverListeners(socket);
  if (listeners === null) return null;
  const parser = socket.parser as ServerParser;
  for (const [event, listener] of listeners) socket.removeListener(event, listener);
  // As the upgrade path: stop parsing, hand the socket's reads back to JavaScript, take the
  // parser out of the server's connection list (its request and header timeouts) and back
  // to the pool.
  parser.finish();
  (freeParser as FreeParser)(parser, res.req, socket);
  res.detachSocket(socket);
  const closeListeners = res.listeners("close") as (() => void)[];
  res.removeAllListeners("close");
  return { socket, closeListeners };
}
