/**
 * `npm run test:stress`: the whole of `npm test` while every core is busy. It starts one
 * busy-loop process per core (`--hogs N` to choose), runs `npm test` (lint, types, every test
 * file) next to them, and always stops them — when the tests end, fail, or the run is
 * interrupted (Ctrl-C, SIGTERM). A hog whose parent died anyway (SIGKILL) notices that it
 * was orphaned and exits by itself.
 *
 * A test that passes alone but fails here found a race, in the code or in the test: a wait
 * that does not name what it waits for, a check that runs before its subject can have
 * happened, a bound too tight for a loaded machine. Fix it; never retry it.
 *
 * `npm run test:stress -- FILE…` runs only those test files (as `test:unit` runs them) under
 * the same load, to check one fix without the whole suite. The last line sums up: the
 * outcome, the test counts and how long it took.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";

const USAGE = "usage: npm run test:stress [-- --hogs N] [TEST_FILE…]";

/**
 * Spins one core. Every ~50 M iterations (tens of ms) it checks that the process that started
 * it is still its parent, so a hog never outlives a runner that was killed without a chance
 * to clean up.
 */
const HOG =
  "const p=process.ppid;let i=0;for(;;){if(++i===5e7){i=0;if(process.ppid!==p)process.exit(0)}}";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    hogs: { type: "string", default: String(availableParallelism()) },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const hogCount = Number(values.hogs);
if (!Number.isInteger(hogCount) || hogCount < 0 || hogCount > 64) {
  console.error(`--hogs must be an integer in 0..64\n${USAGE}`);
  process.exit(64);
}

const hogs: ChildProcess[] = [];
function stopHogs(): void {
  for (const hog of hogs.splice(0)) {
    if (hog.exitCode === null && hog.signalCode === null) hog.kill("SIGKILL");
  }
}
// Whatever ends this process, the hogs go first.
process.on("exit", stopHogs);

for (let i = 0; i < hogCount; i++) {
  hogs.push(spawn(process.execPath, ["-e", HOG], { stdio: "ignore" }));
}

// Without files: exactly `npm test`. With files: what `test:unit` runs, on those files only.
const [command, args] =
  positionals.length === 0
    ? ["npm", ["test"]]
    : [
        process.execPath,
        [
          "--test",
          "--test-concurrency=2",
          "--test-timeout=180000",
          "--import",
          "./scripts/test-leak-guard.ts",
          ...positionals,
        ],
      ];
const started = performance.now();
console.log(
  `test:stress: ${hogCount} busy processes on ${availableParallelism()} cores; running ${[command, ...args].join(" ")}`,
);
const tests = spawn(command, args, { stdio: ["inherit", "pipe", "inherit"] });

// The node:test summary (TAP `# tests 412`, or the spec reporter's `ℹ tests 412`).
const summary = new Map<string, string>();
let pending = "";
tests.stdout?.on("data", (chunk: Buffer) => {
  process.stdout.write(chunk);
  const lines = (pending + chunk.toString("utf8")).split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) {
    const match = /^[#ℹ] (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)\s*$/.exec(line);
    if (match) summary.set(match[1] as string, match[2] as string);
  }
});

let interrupted: NodeJS.Signals | null = null;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    interrupted = signal;
    stopHogs();
    // A Ctrl-C reached the tests already (same process group); a kill of this process alone
    // did not.
    if (tests.exitCode === null && tests.signalCode === null) tests.kill(signal);
  });
}

tests.once("error", (error) => {
  stopHogs();
  console.error(`test:stress: could not run ${command}: ${error.message}`);
  process.exit(1);
});
tests.once("exit", (code, signal) => {
  stopHogs();
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const counts = ["tests", "pass", "fail", "cancelled", "skipped", "todo"]
    .filter((key) => summary.has(key))
    .map((key) => `${key} ${summary.get(key)}`)
    .join(", ");
  const outcome = interrupted
    ? `interrupted (${interrupted})`
    : code === 0
      ? "passed"
      : `FAILED (${signal ?? `exit ${code}`})`;
  console.log(
    `test:stress: ${outcome} in ${seconds} s with ${hogCount} busy processes${counts ? `; ${counts}` : ""}`,
  );
  process.exit(interrupted ? 130 : (code ?? 1));
});
