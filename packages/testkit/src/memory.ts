/**
 * What the memory attack tests measure with: the live heap of this process (after a full
 * collection) and clients that stop reading, held in a child process (stuck-clients.ts) so
 * that this process holds only the server and its well-behaved clients when it measures.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const STUCK = new URL("./stuck-clients.ts", import.meta.url).pathname;

/** Live heap and off-heap (Buffers) bytes, after a full collection. */
export function liveBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

export const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/**
 * Starts `sessions` × `perSession` HTTP/2 streams of `path` on `url` that never read, in a
 * child process; resolves with it once every stream has its response headers. Stop it with
 * `stdin.end()` and `kill()`.
 */
export async function startStuckClients(
  url: string,
  path: string,
  token: string,
  sessions: number,
  perSession: number,
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [STUCK, url, path, token, String(sessions), String(perSession)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const count = sessions * perSession;
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes(`ready ${count}`)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`stuck clients exited (${code}): ${out}`)));
  });
  return child;
}
