#!/usr/bin/env node
// The `realtime` operator CLI (apps/service/src/cli/main.ts). That entry is TypeScript, which
// Node 24 runs as is; the machine's `node` may be older, so this launcher (plain JavaScript,
// any Node) runs it on the workspace's own Node 24 — the `node` dev dependency — unless it is
// already running on Node 24 or later.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const entry = fileURLToPath(new URL("../apps/service/src/cli/main.ts", import.meta.url));
const major = Number(process.versions.node.split(".")[0]);

if (major >= 24) {
  await import(pathToFileURL(entry).href);
} else {
  const bin = process.platform === "win32" ? "node.cmd" : "node";
  const node = fileURLToPath(new URL(`../node_modules/.bin/${bin}`, import.meta.url));
  if (!existsSync(node)) {
    process.stderr.write(
      `realtime: needs Node 24 (this is ${process.version}); run \`npm install\` in the repository first\n`,
    );
    process.exit(1);
  }
  const result = spawnSync(node, [entry, ...process.argv.slice(2)], { stdio: "inherit" });
  if (result.error) {
    process.stderr.write(`realtime: cannot start ${node}: ${result.error.message}\n`);
    process.exit(1);
  }
  if (result.signal) process.kill(process.pid, result.signal);
  process.exit(result.status ?? 1);
}
