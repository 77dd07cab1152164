/**
 * The browser client's size budget, in `npm test`: `@realtime/client` and `@realtime/protocol`
 * are built to `dist`, then `size-limit` bundles the client as `.size-limit.ts` says (minified,
 * gzipped, with its dependency) and fails above the limit. A size, not a time: it does not
 * depend on the machine. The limits are quoted in the READMEs, so the test holds them equal.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import checks from "../../.size-limit.ts";
import { buildPackages, ROOT, run } from "../../scripts/packages.ts";

const NODE_24 = join(ROOT, "node_modules", ".bin", "node");
const SIZE_LIMIT = join(ROOT, "node_modules", "size-limit", "bin.js");

interface Result {
  name: string;
  passed: boolean;
  size: number;
  sizeLimit: number;
}

test("the browser client, minified and gzipped, is within its budget", async () => {
  await buildPackages(["protocol", "client"]);
  // Exits non-zero (run rejects, printing the report) when a check is over its limit.
  const out = await run(NODE_24, [SIZE_LIMIT, "--json"], { cwd: ROOT });
  const results = JSON.parse(out.slice(out.indexOf("["))) as Result[];
  assert.deepEqual(
    results.map((result) => result.name),
    checks.map((check) => check.name),
  );
  for (const result of results) {
    assert.ok(result.passed, `${result.name}: ${result.size} B > ${result.sizeLimit} B`);
    // A bundle that lost the client (an import dropped as unresolved) would pass any budget.
    assert.ok(result.size > 2000, `${result.name}: ${result.size} B is too small to be the client`);
  }
});

test("the READMEs quote the budgets .size-limit.ts sets", async () => {
  for (const readme of ["README.md", "packages/client/README.md"]) {
    const text = await readFile(join(ROOT, readme), "utf8");
    for (const { limit } of checks) {
      assert.ok(text.includes(limit), `${readme} does not mention the budget ${limit}`);
    }
  }
});
