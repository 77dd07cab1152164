/**
 * The better-sse baseline, used as its README shows: a session per request, one channel per
 * name, `channel.broadcast(event)` per published event. `GET /sub/<channel>`,
 * `POST /pub/<channel>` (JSON body, broadcast as the event data). Run with `PORT` and `HOST`.
 */
import http from "node:http";
import { type Channel, createChannel, createSession } from "better-sse";

const channels = new Map<string, Channel>();

function channel(name: string): Channel {
  let c = channels.get(name);
  if (!c) {
    c = createChannel();
    channels.set(name, c);
  }
  return c;
}

const server = http.createServer((req, res) => {
  const url = req.url ?? "/";
  if (req.method === "GET" && url.startsWith("/sub/")) {
    const name = url.slice(5);
    createSession(req, res).then(
      (session) => channel(name).register(session),
      () => res.destroy(),
    );
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
      channel(name).broadcast(JSON.parse(body), "message");
      res.writeHead(202, { "content-length": "0" }).end();
    });
    return;
  }
  res.writeHead(404, { "content-length": "0" }).end();
});
server.keepAliveTimeout = 300_000;
server.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1");
