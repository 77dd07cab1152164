/**
 * Ad hoc (not part of `npm run bench`): what one small `socket.write` costs the writer on this
 * machine, by how writes are batched — no SSE, no service, just node:net. The writer runs on
 * core 0 and writes a 100-byte event to 1,000 loopback sockets read by a child on core 1, in
 * four patterns for 3 s each; it prints CPU µs per write (user + system, and system alone).
 *
 *   taskset -c 0 node bench/src/write-cost.ts
 *
 * Used to read the scale scenario's room deliveries (bench/README.md, "What a room delivery
 * costs"): a room message reaches ~17–33 members per pod, a small batch per wake-up.
 */
import { fork } from "node:child_process";
import net from "node:net";

const SOCKETS = 1_000;
const EVENT = Buffer.from(
  'id: 123-456\ndata: {"type":"x","timestamp":"2026-12-05T00:00:00.000Z","userId":"u-1"}\n\n',
);

async function reader(): Promise<void> {
  const server = net.createServer((socket) => socket.on("data", () => {}));
  server.listen(0, "127.0.0.1", () => process.send?.((server.address() as net.AddressInfo).port));
}

async function writer(): Promise<void> {
  const child = fork(new URL(import.meta.url).pathname, ["reader"], {
    execPath: "/usr/bin/taskset",
    execArgv: ["-c", "1", process.execPath],
  });
  const port = await new Promise<number>((resolve) =>
    child.once("message", (p) => resolve(Number(p))),
  );
  const sockets: net.Socket[] = [];
  for (let i = 0; i < SOCKETS; i++) {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    sockets.push(socket);
  }
  const phase = async (label: string, batch: number, intervalMs: number) => {
    let writes = 0;
    let next = 0;
    const cpu = process.cpuUsage();
    const started = Date.now();
    while (Date.now() - started < 3_000) {
      for (let k = 0; k < batch; k++, writes++) sockets[next++ % SOCKETS]?.write(EVENT);
      await new Promise((resolve) =>
        intervalMs > 0 ? setTimeout(resolve, intervalMs) : setImmediate(resolve),
      );
    }
    const used = process.cpuUsage(cpu);
    const per = (us: number) => (us / writes).toFixed(1);
    console.log(
      `${label.padEnd(26)} ${String(writes).padStart(7)} writes, ${per(used.user + used.system)} µs CPU per write (${per(used.system)} system)`,
    );
  };
  await phase("1 write every 1 ms", 1, 1);
  await phase("33 writes every 10 ms", 33, 10);
  await phase("1,000 writes every 50 ms", 1_000, 50);
  await phase("100 writes back to back", 100, 0);
  for (const socket of sockets) socket.destroy();
  child.kill();
}

await (process.argv[2] === "reader" ? reader() : writer());
