/**
 * Rolling restart: the pods one at a time — SIGTERM, watch `/readyz` turn 503 (the pod refuses
 * new streams, the proxy sends them elsewhere), wait until the pod drained its streams and
 * exited, start it again, wait for `/readyz` 200 and for it to stay ready for `minReadyMs`
 * (long enough for the proxy to take it back: nginx's `fail_timeout`), then the next pod.
 *
 * `npm run stack:restart` asks the stack started by `npm run stack` (scripts/stack.ts) to do
 * it and prints each step and the figures; the same function runs in the end-to-end test
 * (`e2e/pods/rolling-restart.int.test.ts`). Options: `--min-ready-ms N` (default
 * 2500), `--run-dir DIR` (the stack's; default `$TMPDIR/realtime-stack`).
 */
import http from "node:http";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaultRunDir } from "@realtime/testkit/stack";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "min-ready-ms": { type: "string" },
      "run-dir": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log("usage: npm run stack:restart [-- --min-ready-ms N] [--run-dir DIR]");
    return;
  }
  const runDir = values["run-dir"] ?? defaultRunDir();
  const query = values["min-ready-ms"] ? `?minReadyMs=${Number(values["min-ready-ms"])}` : "";
  const socketPath = join(runDir, "control.sock");
  await new Promise<void>((resolve, reject) => {
    const request = http.request(
      { socketPath, method: "POST", path: `/rolling-restart${query}` },
      (response) => {
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => process.stdout.write(chunk));
        response.once("end", () =>
          response.statusCode === 200
            ? resolve()
            : reject(new Error(`the stack answered ${response.statusCode}`)),
        );
      },
    );
    request.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT" || error.code === "ECONNREFUSED"
          ? new Error(`no stack is running (${socketPath}): start one with \`npm run stack\``)
          : error,
      ),
    );
    request.end();
  });
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`rolling restart: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
