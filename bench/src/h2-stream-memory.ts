/**
 * Ad hoc (not part of `npm run bench`): what one idle HTTP/2 stream costs the server, and of
 * what. The server runs in this process: the service as the bench runs it (`HTTP2=h2c`,
 * production, limits off; `mode=service`), or a bare node:http2 server that answers on the
 * core `stream` event and writes one line (`mode=bare`: the floor node:http2 itself sets).
 * A child process opens N streams of `/api/events?channel=channel:b0`, 100 per session, and
 * holds them, reading. Before and after: RSS (as the bench's idle scenario: 2 s after the last
 * open, no GC), then after two full GCs RSS, V8 heap used, V8 heap physical, external memory;
 * and (`SNAP=1`) a heap snapshot each time, diffed by constructor (count and self size per
 * stream, largest first), with the properties of one `ServerHttp2Stream`. RSS minus the heap's
 * physical size is the native side (nghttp2's per-stream state, the stream's handle, malloc).
 *
 *   flock /tmp/bench.lock node_modules/.bin/node --expose-gc bench/src/h2-stream-memory.ts \
 *     [streams=5000] [mode=service|bare]
 *
 * Node flags (e.g. `--max-semi-space-size=16`) go before the script. `SNAP=1` writes the
 * snapshots to the current directory (~100–300 MB each at 5,000 streams; give the parse
 * `--max-old-space-size=8000`), parses and removes them; `DEPTH=n` names n retainers up
 * (default 2). `PER_SESSION` (default 100) streams per session; `H2MEM_ENV` (JSON) adds to
 * the service's environment. Glibc's main arena (`[heap]`) and the unnamed mappings come
 * from /proc/self/smaps. Figures: bench/README.md, idle memory, item 4.
 */
import { fork } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { getHeapStatistics, writeHeapSnapshot } from "node:v8";

const PER_SESSION = Number(process.env.PER_SESSION ?? 100);
/** How many retainers up the snapshot diff names (`DEPTH=3`). */
const DEPTH = Number(process.env.DEPTH ?? 2);

if (process.argv[2] === "client") await client(Number(process.argv[3]), Number(process.argv[4]));
else await main();

/** The child: opens `n` streams to `port`, 100 per session; says "open" once all answered. */
async function client(port: number, n: number): Promise<void> {
  const { userToken } = await import("./jwt.ts");
  const authorization = `Bearer ${userToken("u_bench")}`;
  const sessions: http2.ClientHttp2Session[] = [];
  let ok = 0;
  let failed = 0;
  const openSession = async (count: number) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    sessions.push(session);
    session.on("error", () => {});
    await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<void>((resolve) => {
            const req = session.request({
              ":path": "/api/events?channel=channel:b0",
              authorization,
            });
            req.on("response", (headers) => {
              if (headers[":status"] !== 200) failed++;
            });
            // Resolved on the first data (the `ready` event), then read and dropped.
            req.once("data", () => {
              ok++;
              resolve();
            });
            req.on("data", () => {});
            req.on("error", () => {
              failed++;
              resolve();
            });
            req.on("close", () => resolve());
          }),
      ),
    );
  };
  const batches: number[] = [];
  for (let left = n; left > 0; left -= PER_SESSION) batches.push(Math.min(PER_SESSION, left));
  // Eight sessions opening at a time (the bench's generator: 256 streams in flight).
  for (let i = 0; i < batches.length; i += 8) {
    await Promise.all(batches.slice(i, i + 8).map((count) => openSession(count)));
  }
  process.send?.({ ok, failed });
  process.on("message", (message) => {
    if (message === "close") {
      for (const session of sessions) session.destroy();
      process.exit(0);
    }
  });
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5000);
  const mode = process.argv[3] ?? "service";
  const snap = process.env.SNAP === "1";
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");

  const { port, stop } = mode === "bare" ? await bareServer() : await serviceServer();

  const openStreams = async (count: number) => {
    const child = fork(new URL(import.meta.url).pathname, ["client", String(port), String(count)], {
      execArgv: [],
    });
    const result = await new Promise<{ ok: number; failed: number }>((resolve) =>
      child.once("message", (m) => resolve(m as { ok: number; failed: number })),
    );
    return {
      ...result,
      close: async () => {
        child.send("close");
        await new Promise((resolve) => child.once("exit", resolve));
      },
    };
  };
  const fullGc = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const sample = () => {
    const heap = getHeapStatistics();
    const memory = process.memoryUsage();
    return {
      rss: memory.rss,
      heapUsed: heap.used_heap_size,
      heapPhysical: heap.total_physical_size,
      external: memory.external,
      mallocHeap: mallocHeapRss(),
      anonymous: anonymousRss(),
    };
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  // Warm-up: the paths run once (JIT, pools), then closed.
  const warm = await openStreams(200);
  await warm.close();
  await sleep(1000);
  await fullGc();
  const rssBefore = process.memoryUsage().rss;
  const before = sample();
  const snapBefore = snap ? writeHeapSnapshot(`h2mem-before-${process.pid}.heapsnapshot`) : null;
  if (snapBefore) await fullGc();
  const base = snap ? sample() : before;

  const t0 = performance.now();
  const streams = await openStreams(n);
  const openMs = performance.now() - t0;
  await sleep(2000);
  const rssAfter = process.memoryUsage().rss;
  await fullGc();
  const after = sample();
  const snapAfter = snap ? writeHeapSnapshot(`h2mem-after-${process.pid}.heapsnapshot`) : null;
  const ok = streams.ok;
  const kb = (bytes: number) => Math.round(bytes / ok / 102.4) / 10;
  console.log(
    JSON.stringify({
      mode,
      streams: ok,
      failed: streams.failed,
      opensPerSec: Math.round(ok / (openMs / 1000)),
      kbPerStream: {
        rssNoGc: kb(rssAfter - rssBefore),
        rssAfterGc: kb(after.rss - base.rss),
        heapUsed: kb(after.heapUsed - base.heapUsed),
        heapPhysical: kb(after.heapPhysical - base.heapPhysical),
        external: kb(after.external - base.external),
        nativeRssMinusHeap: kb(after.rss - base.rss - (after.heapPhysical - base.heapPhysical)),
        mallocMainArena: kb(after.mallocHeap - base.mallocHeap),
        anonymousMappings: kb(after.anonymous - base.anonymous),
      },
      execArgv: process.execArgv,
    }),
  );
  await streams.close();
  await stop();
  if (snapBefore && snapAfter) {
    diffSnapshots(snapBefore, snapAfter, ok);
    rmSync(snapBefore);
    rmSync(snapAfter);
  }
}

/** Resident bytes of the process' `[heap]` mapping: glibc's main arena (the main thread's malloc). */
function mallocHeapRss(): number {
  const smaps = readFileSync("/proc/self/smaps", "utf8");
  const at = smaps.indexOf("[heap]");
  if (at < 0) return 0;
  const rss = /\nRss:\s+(\d+) kB/.exec(smaps.slice(at));
  return rss ? Number(rss[1]) * 1024 : 0;
}

/** Resident bytes of the process' unnamed mappings (V8's pages, malloc's mmapped chunks and arenas). */
function anonymousRss(): number {
  let total = 0;
  let anonymous = false;
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) anonymous = line.trim().split(/\s+/).length < 6;
    else if (anonymous && line.startsWith("Rss:")) total += Number(line.split(/\s+/)[1]) * 1024;
  }
  return total;
}

async function serviceServer(): Promise<{ port: number; stop: () => Promise<void> }> {
  const { buildApp, loadConfig } = await import("@realtime/service");
  const { BENCH_POD_ENV } = await import("./servers.ts");
  const config = loadConfig({
    NODE_ENV: "production",
    LOG_LEVEL: "warn",
    ...BENCH_POD_ENV,
    PORT: "0",
    HTTP2: "h2c",
    ...(process.env.H2MEM_ENV ? JSON.parse(process.env.H2MEM_ENV) : {}),
  });
  const service = await buildApp(config, { logger: false });
  await service.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = service.app.server.address() as AddressInfo;
  return { port, stop: () => service.shutdown(200) };
}

/** node:http2 alone: the core `stream` event, the SSE head, one line; nothing kept. */
async function bareServer(): Promise<{ port: number; stop: () => Promise<void> }> {
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200, "content-type": "text/event-stream" });
    stream.write("retry: 1000\n\n");
    stream.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Where each field sits in the snapshot's flat node and edge arrays. */
function layoutOf(snapshot: Snapshot) {
  const {
    node_fields: nodeFields,
    edge_fields: edgeFields,
    node_types,
    edge_types,
  } = snapshot.snapshot.meta;
  return {
    width: nodeFields.length,
    edgeWidth: edgeFields.length,
    typeAt: nodeFields.indexOf("type"),
    nameAt: nodeFields.indexOf("name"),
    idAt: nodeFields.indexOf("id"),
    sizeAt: nodeFields.indexOf("self_size"),
    edgeCountAt: nodeFields.indexOf("edge_count"),
    edgeTypeAt: edgeFields.indexOf("type"),
    edgeNameAt: edgeFields.indexOf("name_or_index"),
    toAt: edgeFields.indexOf("to_node"),
    nodeTypes: node_types[0],
    edgeTypes: edge_types[0],
  };
}

/** Count and self size by `type:name` (objects: their constructor). */
function tally(snapshot: Snapshot): Map<string, { count: number; size: number }> {
  const { width, typeAt, nameAt, sizeAt, nodeTypes: types } = layoutOf(snapshot);
  const totals = new Map<string, { count: number; size: number }>();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt] as number] as string;
    const name = strings[nodes[i + nameAt] as number] as string;
    const key =
      type === "object" || type === "native" || type === "closure" || type === "hidden"
        ? `${type}:${name.slice(0, 60)}`
        : type === "code"
          ? "code"
          : `(${type})`;
    const entry = totals.get(key) ?? { count: 0, size: 0 };
    entry.count++;
    entry.size += nodes[i + sizeAt] as number;
    totals.set(key, entry);
  }
  return totals;
}

function diffSnapshots(beforePath: string, afterPath: string, streams: number): void {
  const before = tally(JSON.parse(readFileSync(beforePath, "utf8")) as Snapshot);
  const afterSnapshot = JSON.parse(readFileSync(afterPath, "utf8")) as Snapshot;
  const after = tally(afterSnapshot);
  const rows: { key: string; count: number; size: number }[] = [];
  for (const [key, entry] of after) {
    const old = before.get(key) ?? { count: 0, size: 0 };
    rows.push({
      key,
      count: (entry.count - old.count) / streams,
      size: (entry.size - old.size) / streams,
    });
  }
  rows.sort((a, b) => b.size - a.size);
  const total = rows.reduce((sum, row) => sum + row.size, 0);
  console.log(`heap snapshot diff, per stream: ${Math.round(total)} B self size in all`);
  for (const row of rows.slice(0, 45)) {
    if (Math.abs(row.size) < 8) continue;
    console.log(
      `  ${row.size.toFixed(0).padStart(6)} B  ${row.count.toFixed(2).padStart(6)} ×  ${row.key}`,
    );
  }
  retainers(
    beforeIds(JSON.parse(readFileSync(beforePath, "utf8")) as Snapshot),
    afterSnapshot,
    streams,
  );
  describeOne(afterSnapshot, "ServerHttp2Stream");
}

/** The ids of every node of `snapshot` (stable across the snapshots of one process). */
function beforeIds(snapshot: Snapshot): Set<number> {
  const { width, idAt } = layoutOf(snapshot);
  const ids = new Set<number>();
  for (let i = 0; i < snapshot.nodes.length; i += width)
    ids.add(snapshot.nodes[i + idAt] as number);
  return ids;
}

/**
 * The nodes new in `snapshot` (not in `old`), by what holds them: their kind, the edge and
 * the kind of their first strong retainer. Per stream, largest first.
 */
function retainers(old: Set<number>, snapshot: Snapshot, streams: number): void {
  const {
    width,
    edgeWidth,
    typeAt,
    nameAt,
    idAt,
    sizeAt,
    edgeCountAt,
    edgeTypeAt,
    edgeNameAt,
    toAt,
    nodeTypes,
    edgeTypes,
  } = layoutOf(snapshot);
  const { nodes, edges, strings } = snapshot;
  const kind = (node: number) => {
    const type = nodeTypes[nodes[node + typeAt] as number] as string;
    const name = strings[nodes[node + nameAt] as number] as string;
    return type === "object" || type === "native" || type === "closure" || type === "hidden"
      ? `${type}:${name.slice(0, 40)}`
      : `(${type})`;
  };
  // The first strong retainer of every node: its index and the edge's label.
  const nodeCount = nodes.length / width;
  const retainer = new Int32Array(nodeCount).fill(-1);
  const via: string[] = new Array(nodeCount);
  for (let i = 0, e = 0; i < nodes.length; i += width) {
    const count = nodes[i + edgeCountAt] as number;
    for (let k = 0; k < count; k++, e += edgeWidth) {
      const edgeType = edgeTypes[edges[e + edgeTypeAt] as number] as string;
      if (edgeType === "weak" || edgeType === "shortcut") continue;
      const to = (edges[e + toAt] as number) / width;
      if (retainer[to] !== -1) continue;
      const raw = edges[e + edgeNameAt] as number;
      retainer[to] = i;
      via[to] =
        edgeType === "element" || edgeType === "hidden"
          ? "[]"
          : (strings[raw] as string).slice(0, 30);
    }
  }
  const path = (node: number, depth: number): string => {
    const index = node / width;
    const from = retainer[index] as number;
    if (depth === 0 || from < 0) return kind(node);
    return `${kind(node)} ← ${via[index]} of ${path(from, depth - 1)}`;
  };
  const held = new Map<number, string>();
  for (let i = 0; i < nodes.length; i += width) {
    if (!old.has(nodes[i + idAt] as number)) held.set(i, path(i, DEPTH));
  }
  const totals = new Map<string, { count: number; size: number }>();
  for (const [node, key] of held) {
    const entry = totals.get(key) ?? { count: 0, size: 0 };
    entry.count++;
    entry.size += nodes[node + sizeAt] as number;
    totals.set(key, entry);
  }
  const rows = [...totals].sort((a, b) => b[1].size - a[1].size);
  console.log("new nodes by first retainer, per stream:");
  for (const [key, entry] of rows.slice(0, 70)) {
    if (entry.size / streams < 4) break;
    console.log(
      `  ${(entry.size / streams).toFixed(0).padStart(6)} B  ${(entry.count / streams).toFixed(2).padStart(6)} ×  ${key}`,
    );
  }
}

/** The properties of the last object named `name` in the snapshot, with their targets. */
function describeOne(snapshot: Snapshot, name: string): void {
  const {
    width,
    edgeWidth,
    typeAt,
    nameAt,
    sizeAt,
    edgeCountAt,
    edgeTypeAt,
    edgeNameAt,
    toAt,
    nodeTypes,
    edgeTypes,
  } = layoutOf(snapshot);
  const { nodes, edges, strings } = snapshot;
  const firstEdge: number[] = [];
  let found = -1;
  for (let i = 0, e = 0; i < nodes.length; i += width) {
    firstEdge.push(e);
    e += (nodes[i + edgeCountAt] as number) * edgeWidth;
    if (strings[nodes[i + nameAt] as number] === name) found = i;
  }
  if (found < 0) return;
  const show = (node: number, depth: number, label: string) => {
    const type = nodeTypes[nodes[node + typeAt] as number];
    const nodeName = (strings[nodes[node + nameAt] as number] as string).slice(0, 40);
    console.log(
      `${"  ".repeat(depth + 1)}${label} → ${type}:${nodeName} ${nodes[node + sizeAt]} B`,
    );
  };
  console.log(`one ${name}:`);
  const start = firstEdge[found / width] as number;
  const count = nodes[found + edgeCountAt] as number;
  for (let k = 0; k < count; k++) {
    const e = start + k * edgeWidth;
    const edgeType = edgeTypes[edges[e + edgeTypeAt] as number];
    const raw = edges[e + edgeNameAt] as number;
    const label =
      edgeType === "element" || edgeType === "hidden" ? `[${raw}]` : (strings[raw] as string);
    show(edges[e + toAt] as number, 1, `${edgeType} ${label}`);
  }
}
