/**
 * A machine-wide lock for the multi-pod load tests. `node --test` runs test files in parallel
 * (the root `test:unit` with `--test-concurrency=2`); two files that each start Redis, two
 * pods and a publisher at ≥ 1 event/ms would halve each other's throughput on a 2-core CI
 * machine and turn a rate requirement into a coin toss. Each such file holds this lock from
 * its `before` to its `after`, so they take turns; lighter test files still run alongside.
 *
 * The lock is a directory (mkdir is atomic) holding the owner's pid; a lock whose owner died
 * is taken over. A file that waits longer than `waitMs` goes ahead without it (with a warning)
 * rather than fail.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LOCK = join(tmpdir(), "realtime-multi-pod-load.lock");
const OWNER = join(LOCK, "pid");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function tryTake(): boolean {
  try {
    mkdirSync(LOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    let owner = Number.NaN;
    try {
      owner = Number(readFileSync(OWNER, "utf8"));
    } catch {
      // Just created by someone who has not written its pid yet: wait.
      return false;
    }
    if (Number.isInteger(owner) && alive(owner)) return false;
    rmSync(LOCK, { recursive: true, force: true }); // the owner died without releasing it
    return false;
  }
  writeFileSync(OWNER, String(process.pid));
  return true;
}

/** Waits for the lock (polling every 100 ms) and resolves with its release function. */
export async function acquireLoadLock(waitMs = 100_000): Promise<() => void> {
  const deadline = Date.now() + waitMs;
  while (!tryTake()) {
    if (Date.now() > deadline) {
      console.warn(`load lock ${LOCK} still held after ${waitMs} ms: going ahead without it`);
      return () => {};
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    try {
      if (readFileSync(OWNER, "utf8") === String(process.pid)) {
        rmSync(LOCK, { recursive: true, force: true });
      }
    } catch {
      // already gone
    }
  };
  process.once("exit", release);
  return release;
}
