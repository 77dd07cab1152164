/**
 * The plain node:http baseline: what a careful developer writes without a framework.
 * `GET /sub/<channel>` opens an SSE stream; `POST /pub/<channel>` sends the body as one event
 * to every stream of the channel — the event string is built once and written to each
 * response. Run by the bench with `PORT` and `HOST`.
 */
import http, { type ServerResponse } from "node:http";

const channels = new Map<string, Set<ServerResponse>>();
let ids = 0;

const server = http.createServer((req, res) => {
  const url = req.url ?? "/";
  if (req.method === "GET" && url.startsWith("/sub/")) {
    const name = url.slice(5);
    let set = channels.get(name);
    if (!set) {
      set = new Set();
      channels.set(name, set);
    }
    const streams = set;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
    });
    res.flushHeaders();
    streams.add(res);
    req.on("close", () => {
      streams.delete(res);
      if (streams.size === 0) channels.delete(name);
    });
    return;
  }
  if (req.method === "POST" && url.startsWith("/pub/")) {
    const name = url.slice(5);
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      const message = `id: ${++ids}\ndata: ${body}\n\n`;
      const set = channels.get(name);
      if (set) for (const stream of set) stream.write(message);
      res.writeHead(202, { "content-length": "0" }).end();
    });
    return;
  }
  res.writeHead(404, { "content-length": "0" }).end();
});
server.keepAliveTimeout = 300_000;
server.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1");
