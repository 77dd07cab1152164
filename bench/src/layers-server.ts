/**
 * The servers of `layers.ts`, one per layer under the service, each in its own process:
 *
 * - `net`: node:net reading the request head by hand (no HTTP parser: the `Authorization` line
 *   found with a regular expression) and writing the head and a `ready` event in one write;
 *   streams only. What Node's sockets alone cost.
 * - `node`: node:http answering by hand — the SSE head and a `ready` event for a stream, a 202
 *   with `{ channel, offset }` for a publish after parsing its JSON body. The floor.
 * - `handler`: `createEventsHandler` of `@realtime/server` on node:http (streams only).
 * - `plugin`: the `@realtime/fastify` plugin on a bare Fastify (no logger, no hooks of ours).
 *
 * `handler` and `plugin` share one hub on a `MemoryBroker` and check the bench's HS256 tokens
 * with node:crypto (`verifyToken`), so between them only the HTTP layer differs. Prints
 * `listening` once it listens on `PORT`; exits on SIGTERM (so `--cpu-prof` is written).
 *
 *   LAYER=net|node|handler|plugin PORT=… node bench/src/layers-server.ts
 */
import http from "node:http";
import net from "node:net";
import { realtime } from "@realtime/fastify";
import { createEventsHandler, Hub, MemoryBroker, type RealtimeUser } from "@realtime/server";
import Fastify from "fastify";
import { verifyToken } from "./jwt.ts";

const port = Number(process.env.PORT);
const layer = process.env.LAYER;
process.on("SIGTERM", () => process.exit(0));

function userOf(authorization: string | string[] | undefined): RealtimeUser | null {
  const claims = verifyToken(String(authorization ?? "").replace(/^Bearer /, ""));
  return claims === null ? null : { id: String(claims.sub) };
}

const STREAM_HEAD = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-store",
  "x-accel-buffering": "no",
};

if (layer === "net") {
  const head = [
    "HTTP/1.1 200 OK",
    ...Object.entries(STREAM_HEAD).map(([name, value]) => `${name}: ${value}`),
    "",
    "retry: 1000\n\nevent: ready\ndata: {}\n\n",
  ].join("\r\n");
  const server = net.createServer((socket) => {
    let received = "";
    socket.setEncoding("latin1");
    const onData = (chunk: string) => {
      received += chunk;
      if (!received.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      const authorization = /\r\nauthorization: ([^\r]*)/i.exec(received)?.[1];
      if (userOf(authorization) === null) socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
      else socket.write(head);
    };
    socket.on("data", onData);
    socket.on("error", () => {});
  });
  server.listen(port, "127.0.0.1", () => console.log("listening"));
} else if (layer === "node") {
  const server = http.createServer((request, response) => {
    if (userOf(request.headers.authorization) === null) {
      response.writeHead(401).end();
      return;
    }
    if (request.method === "GET") {
      response.writeHead(200, STREAM_HEAD);
      response.write("retry: 1000\n\nevent: ready\ndata: {}\n\n");
      return;
    }
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      body += chunk;
    });
    request.on("end", () => {
      const { channel } = JSON.parse(body) as { channel: string };
      const answer = JSON.stringify({ channel, offset: 1 });
      response.writeHead(202, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(answer),
      });
      response.end(answer);
    });
  });
  server.listen(port, "127.0.0.1", () => console.log("listening"));
} else {
  const broker = new MemoryBroker();
  const hub = new Hub({ broker, history: broker, maxConnections: 19_500 });
  const authenticate = (request: { headers: http.IncomingHttpHeaders }) =>
    userOf(request.headers.authorization);
  if (layer === "handler") {
    const events = createEventsHandler({ hub, authenticate, maxStreamsPerUser: false });
    const server = http.createServer((request, response) => void events(request, response));
    server.listen(port, "127.0.0.1", () => console.log("listening"));
  } else if (layer === "plugin") {
    const app = Fastify({ logger: false });
    await app.register(realtime, {
      hub,
      broker,
      authenticate,
      maxStreamsPerUser: false,
      // Streams as the default; publishing for every token (the bench's publisher's).
      authorize: ({ action }) => action === "publish" || action === "subscribe",
    });
    await app.listen({ port, host: "127.0.0.1" });
    console.log("listening");
  } else {
    throw new Error(`LAYER must be net, node, handler or plugin, not ${layer}`);
  }
}
