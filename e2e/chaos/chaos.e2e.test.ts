/**
 * A short `npm run chaos` in the suite: the real command, a fixed seed, 30 s of faults. It
 * must exit 0 with a summary as its last line that counts real work (faults injected, events
 * accepted and delivered) and nothing lost. The long runs are in docs/reliability.md.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { acquireLoadLock } from "@realtime/testkit/load-lock";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

/**
 * Every single-Redis fault but `redis-stop`, whose presence mismatch under heavy load is not
 * understood yet (docs/reliability.md, "Known failures"). Add it back once it is.
 */
const FAULTS = "pod-kill,pod-stop,pod-term,pubsub-kill,redis-empty,redis-rdb,blackhole,cpu";

describe("npm run chaos", { timeout: 240_000 }, () => {
  let release: (() => void) | undefined;
  before(async () => {
    // Pods, Redis and CPU hogs: it takes its turn with the other multi-pod load tests.
    release = await acquireLoadLock();
  });
  after(() => release?.());

  it("a fixed seed for 30 s: faults injected, events delivered, nothing lost", async () => {
    const child = spawn(
      process.execPath,
      [MAIN, "--seed", "15", "--duration", "30", "--rate", "60", `--faults=${FAULTS}`],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let output = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      output += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    const last = output.trimEnd().split("\n").at(-1) ?? "";
    const field = (name: string) => Number(new RegExp(`\\b${name}=(\\d+)`).exec(last)?.[1]);
    assert.equal(code, 0, output.slice(-6_000));
    assert.match(last, /^chaos: seed=15 mode=redis duration=30s .* result=PASS$/);
    assert.ok(field("faults") >= 3, `faults injected: ${last}`);
    assert.ok(field("accepted") >= 500, `events accepted: ${last}`);
    assert.ok(field("deliveries") >= field("accepted"), `deliveries: ${last}`);
    for (const name of ["losses", "duplicates", "reorders", "false_resets", "strays", "stalled"]) {
      assert.equal(field(name), 0, `${name}: ${last}`);
    }
  });
});
