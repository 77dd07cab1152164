/**
 * Ad hoc: what a stream open and a publish cost in server CPU, layer by layer under our
 * service, with Nchan in the same run as the yardstick — to tell where an open's or a POST's
 * CPU goes before deciding what to cut.
 *
 * Layers (`layers-server.ts`): `net` (node:net answering the head by hand, no HTTP parser),
 * `node` (node:http answering by hand: the floor of a Node
 * server), `handler` (`createEventsHandler` on node:http), `plugin` (the `@realtime/fastify`
 * plugin on a bare Fastify), `service` (our pod as the bench runs it: production, embedded,
 * the abuse limits off), and `nchan` (one Nchan node, memory storage). Each is pinned to the
 * server core, this process to the generator core (as in `npm run bench`).
 *
 * Streams: `STREAMS` fresh HTTP/1.1 opens (`INFLIGHT` at a time, each its own connection,
 * done when the head is in — with our `ready` event, sent in the same write), three rounds;
 * then publishes: `POSTS` POSTs, 64 in flight over 4 keep-alive connections, no subscribers.
 * Reports server CPU µs per open and per POST (every thread of the process tree), medians of
 * the rounds. `LAYERS_PROF=<dir>` runs the node layers under --cpu-prof.
 *
 *   flock /tmp/bench.lock node_modules/.bin/node bench/src/layers.ts [layer…]
 */
import http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { elapsedLog, pinToGeneratorCore } from "./generator.ts";
import { publisherToken, userToken } from "./jwt.ts";
import { cpuNs, processTree } from "./proc.ts";
import {
  freePort,
  runDir,
  spawnPinned,
  startNchan,
  startRealtime,
  stopChild,
  waitListening,
} from "./servers.ts";

const STREAMS = Number(process.env.STREAMS ?? 4000);
const INFLIGHT = Number(process.env.INFLIGHT ?? 500);
const POSTS = Number(process.env.POSTS ?? 20_000);
const ROUNDS = 3;
const CHANNELS = 100;
const ALL = ["nchan", "net", "node", "handler", "plugin", "service"] as const;
type Layer = (typeof ALL)[number];
const STREAMS_ONLY: ReadonlySet<Layer> = new Set(["net", "handler"]);

interface Server {
  readonly port: number;
  readonly pid: number;
  subPath(channel: number): string;
  readonly subHeaders: string;
  post(
    channel: number,
    seq: number,
  ): { path: string; headers: Record<string, string>; body: string };
  stop(): Promise<void>;
}

const log = elapsedLog();
const sub = userToken("u_bench");
const pub = publisherToken();
const prof = process.env.LAYERS_PROF;
const nodeFlags = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];

const ours = {
  subPath: (c: number) => `/api/events?channel=channel:b${c}`,
  subHeaders: `authorization: Bearer ${sub}\r\n`,
  post: (c: number, seq: number) => ({
    path: "/api/publish",
    headers: { authorization: `Bearer ${pub}`, "content-type": "application/json" },
    body: `{"channel":"channel:b${c}","event":{"type":"bench","m":"e${seq}"}}`,
  }),
};

async function start(layer: Layer): Promise<Server> {
  if (layer === "nchan" || layer === "service") {
    const target = layer === "nchan" ? await startNchan() : await startRealtime({ nodeFlags });
    return {
      port: target.port,
      pid: target.pid,
      subPath: (c) => target.subPath(c),
      subHeaders: Object.entries(target.subHeaders)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join(""),
      post: (c, seq) => {
        const r = target.publish(c, seq, 0);
        return { path: r.path, headers: r.headers ?? {}, body: r.body ?? "" };
      },
      stop: () => target.stop(),
    };
  }
  const dir = runDir(`layer-${layer}`);
  const port = await freePort();
  const script = fileURLToPath(new URL("./layers-server.ts", import.meta.url));
  const child = spawnPinned(process.execPath, [...nodeFlags, script], dir, {
    LAYER: layer,
    PORT: String(port),
  });
  await waitListening(child, port, dir);
  return { port, pid: child.pid as number, ...ours, stop: () => stopChild(child, "SIGTERM") };
}

function open(server: Server, channel: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port: server.port });
    let head = "";
    socket.setEncoding("latin1");
    socket.once("connect", () =>
      socket.write(
        `GET ${server.subPath(channel)} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n${server.subHeaders}\r\n`,
      ),
    );
    const onData = (chunk: string) => {
      head += chunk;
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) return;
      if (!head.startsWith("HTTP/1.1 200")) {
        reject(new Error(`open refused: ${head.slice(0, 200)}`));
        return;
      }
      socket.off("data", onData);
      resolve(socket);
    };
    socket.on("data", onData);
    socket.on("error", reject);
  });
}

async function openRound(server: Server): Promise<number> {
  const pids = processTree(server.pid);
  const before = cpuNs(pids);
  const sockets: net.Socket[] = [];
  let next = 0;
  const opener = async () => {
    while (next < STREAMS) sockets.push(await open(server, next++ % CHANNELS));
  };
  await Promise.all(Array.from({ length: INFLIGHT }, opener));
  const used = cpuNs(pids) - before;
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          socket.once("close", () => resolve());
          socket.destroy();
        }),
    ),
  );
  return used / 1000 / STREAMS;
}

async function publishRound(server: Server): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const pids = processTree(server.pid);
  const before = cpuNs(pids);
  let next = 0;
  const poster = async () => {
    while (next < POSTS) {
      const seq = next++;
      const { path, headers, body } = server.post(seq % CHANNELS, seq);
      await new Promise<void>((resolve, reject) => {
        const request = http.request(
          { host: "127.0.0.1", port: server.port, path, method: "POST", headers, agent },
          (response) => {
            response.resume();
            response.once("end", () =>
              (response.statusCode ?? 0) < 300
                ? resolve()
                : reject(new Error(`publish answered ${response.statusCode}`)),
            );
          },
        );
        request.once("error", reject);
        request.end(body);
      });
    }
  };
  await Promise.all(Array.from({ length: 64 }, poster));
  const used = cpuNs(pids) - before;
  agent.destroy();
  return used / 1000 / POSTS;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

const cell = (values: number[]) =>
  `${median(values).toFixed(0)} (${values.map((v) => v.toFixed(0)).join(", ")})`;

const layers = (process.argv.slice(2) as Layer[]).filter((l) => ALL.includes(l));
pinToGeneratorCore(log);
const rows: string[] = [];
for (const layer of layers.length > 0 ? layers : ALL) {
  const server = await start(layer);
  try {
    const opens: number[] = [];
    const posts: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      opens.push(await openRound(server));
      // These two serve streams only.
      posts.push(STREAMS_ONLY.has(layer) ? Number.NaN : await publishRound(server));
      log(
        `${layer} round ${round + 1}: open ${opens.at(-1)?.toFixed(0)} µs, POST ${posts.at(-1)?.toFixed(0)} µs`,
      );
    }
    rows.push(`| ${layer} | ${cell(opens)} | ${STREAMS_ONLY.has(layer) ? "–" : cell(posts)} |`);
  } finally {
    await server.stop();
  }
}
console.log(
  `\n${STREAMS} opens × ${ROUNDS}, ${POSTS} POSTs × ${ROUNDS}; server CPU µs, median (rounds)\n`,
);
console.log("| layer | per open | per POST |\n|---|---:|---:|");
for (const row of rows) console.log(row);
process.exit(0);
