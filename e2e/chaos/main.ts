/**
 * `npm run chaos -- --seed N --duration SECONDS [--help for the rest]`: the supervisor.
 *
 * It runs the harness (`harness.ts`) as a child in a new process group with a temporary
 * directory of its own as `TMPDIR` (the redis-servers' directories and RDB files go there), and
 * passes its output through. Whatever becomes of the harness — it finishes, throws, runs out of
 * memory or is SIGKILLed — the supervisor then SIGKILLs whatever is left in the group (pods,
 * redis-servers, CPU hogs, frozen or not) and removes the directory, so hours of unattended
 * runs leak no process, port or file. Ctrl-C (SIGINT, SIGTERM, SIGHUP) is passed to the
 * harness, which stops the run cleanly and still prints its summary; a second one, or 60 s
 * without an exit, ends the group at once.
 *
 * The last line of output is always the one-line summary (`chaos: seed=…`); when the harness
 * died before printing one, the supervisor prints `result=CRASHED`. Exit status: 0 nothing
 * lost, 1 a violation, 2 the harness failed, 130 interrupted, 64 bad usage.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HELP, parseOptions, UsageError } from "./options.ts";

const HARNESS = new URL("./harness.ts", import.meta.url).pathname;
const argv = process.argv.slice(2);

let seed = "?";
try {
  const options = parseOptions(argv);
  if (!options) {
    console.log(HELP);
    process.exit(0);
  }
  seed = String(options.seed);
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`chaos: ${error.message}\n\n${HELP}`);
  process.exit(64);
}

const runDir = mkdtempSync(join(tmpdir(), "realtime-chaos-"));
const child = spawn(process.execPath, [HARNESS, ...argv], {
  detached: true,
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, TMPDIR: runDir },
});
const group = child.pid ?? 0;

let lastLine = "";
let pending = "";
child.stdout.setEncoding("utf8");
child.stdout.on("data", (chunk: string) => {
  process.stdout.write(chunk);
  pending += chunk;
  const lines = pending.split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) if (line.trim() !== "") lastLine = line;
});

function killGroup(): void {
  try {
    process.kill(-group, "SIGKILL");
  } catch {
    // nothing left in it
  }
}

let interrupts = 0;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    interrupts++;
    if (interrupts > 1) {
      killGroup();
      return;
    }
    child.kill("SIGINT");
    setTimeout(killGroup, 60_000).unref();
  });
}
// If this process dies some other way, the harness notices (its parent changed) and stops.
process.once("exit", () => {
  killGroup();
  rmSync(runDir, { recursive: true, force: true });
});

const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
  child.once("close", (c, s) => resolve([c, s])),
);
// The harness may have left something behind (it crashed): end the whole group.
killGroup();
rmSync(runDir, { recursive: true, force: true });
if (pending.trim() !== "") lastLine = pending;
if (!lastLine.startsWith("chaos: seed=")) {
  console.log(
    `chaos: seed=${seed} result=CRASHED (the harness ended with ${signal ?? `exit code ${code}`} before its summary)`,
  );
  process.exit(2);
}
process.exit(code ?? 2);
