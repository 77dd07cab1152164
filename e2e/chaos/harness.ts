/**
 * The chaos run itself, as a child of `main.ts` (the supervisor) in a process group of its own:
 * every process it starts (pods, redis-servers, CPU hogs) is in that group, so the supervisor
 * can end them all whatever happens here. Ctrl-C (forwarded by the supervisor as SIGINT) and the
 * supervisor's death both end the run early and cleanly: faults stop, every process is stopped
 * (frozen ones woken first), and the summary says INTERRUPTED.
 */
import { runChaos } from "./chaos-run.ts";
import type { Violation } from "./checker.ts";
import { parseOptions } from "./options.ts";
import { seconds } from "./run-log.ts";

/** Violations printed in full; the rest are counted. */
const MAX_PRINTED = 40;

const options = parseOptions(process.argv.slice(2));
if (!options) process.exit(0);

const abort = new AbortController();
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (abort.signal.aborted) process.exit(130);
    console.log(`chaos: ${signal}: stopping`);
    abort.abort();
  });
}
// The supervisor is gone (killed): nobody will clean up after us, so stop now.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent && !abort.signal.aborted) abort.abort();
}, 1_000).unref();

const describe = (v: Violation) =>
  `${v.kind.toUpperCase()} seed=${options.seed} ${v.subscriber} ${v.channel} events=${v.eventIds.map((id) => `e${id}`).join(",")} ${seconds(v.from)}..${seconds(v.to)}: ${v.detail}; faults in force: ${v.faults.join(", ") || "none"}`;

try {
  const result = await runChaos(options, abort.signal, (line) => console.log(line));
  const { violations } = result.verdict;
  for (const v of violations.slice(0, MAX_PRINTED)) console.log(describe(v));
  if (violations.length > MAX_PRINTED) {
    console.log(`… and ${violations.length - MAX_PRINTED} more violations`);
  }
  console.log(result.summary);
  process.exitCode = result.interrupted ? 130 : result.passed ? 0 : 1;
} catch (error) {
  console.error(error);
  console.log(`chaos: seed=${options.seed} result=ERROR (${String(error).split("\n")[0]})`);
  process.exitCode = 2;
}
// Whatever still holds the event loop (a socket of a dead pod) must not keep us here.
setTimeout(() => process.exit(), 2_000).unref();
