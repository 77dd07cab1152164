/**
 * Loaded into every test file's process (`node --test --import ./scripts/test-leak-guard.ts`).
 *
 * A test file whose tests are done but which leaves a socket, a timer or a child process
 * behind never exits, and the whole run waits for it (it once held CI for 87 minutes). Once
 * the file's last test has finished, this gives the process a grace period to exit by itself;
 * if something still holds it, it prints what (`process.getActiveResourcesInfo()`) and exits
 * with a failure, so the leak is a named failure instead of a hang. The timer is unref'd: a
 * file that exits normally never sees it.
 */
import { after } from "node:test";

const GRACE_MS = 30_000;

after(() => {
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((kind) => kind !== "TTYWrap");
    process.stderr.write(
      `test-leak-guard: the tests of this file ended ${GRACE_MS / 1000} s ago but the process ` +
        `is still held by: ${held.join(", ") || "(nothing listed)"}\n`,
    );
    process.exit(1);
  }, GRACE_MS).unref();
});
