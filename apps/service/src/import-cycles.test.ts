/**
 * No import cycle in the sources of any workspace, type-only imports included: Biome's
 * `noImportCycles` ignores `import type`, and a type-only cycle is still two files that cannot
 * be understood (or moved) one without the other — `config.ts` and `config-env.ts` were one.
 *
 * Imports are read with TypeScript's own pre-processor (static, type-only, `export … from`,
 * dynamic `import()`), and relative ones resolved to files. Tests are left out: a test may
 * import what it tests from anywhere.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "../../..");
const SOURCE_ROOTS = ["packages", "apps"].flatMap((dir) =>
  readdirSync(join(ROOT, dir), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(ROOT, dir, entry.name)),
);
const SKIP = new Set(["node_modules", "dist", "build", "coverage"]);

/** Every non-test `.ts`/`.tsx` file under `dir`. */
function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return SKIP.has(entry.name) ? [] : sourceFiles(path);
    const source = /\.tsx?$/.test(entry.name) && !/\.d\.ts$/.test(entry.name);
    return source && !/\.test\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/** The relative imports of `source`, of every kind, as written. */
export function importsOf(source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  return info.importedFiles.map((file) => file.fileName).filter((name) => name.startsWith("."));
}

/** Every cycle in the graph of `files` (path → source), each as the paths around it. */
export function findCycles(files: ReadonlyMap<string, string>): string[][] {
  const edges = new Map<string, string[]>();
  for (const [path, source] of files) {
    const targets = importsOf(source).map((name) => resolve(dirname(path), name));
    edges.set(
      path,
      targets.filter((target) => files.has(target)),
    );
  }
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === "open") cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of edges.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

describe("import cycles", () => {
  it("finds a cycle made of type-only imports", () => {
    const files = new Map([
      ["/x/a.ts", 'import type { B } from "./b.ts";\nexport interface A { b: B }'],
      ["/x/b.ts", 'export type { A } from "./a.ts";\nexport interface B { n: number }'],
      ["/x/c.ts", 'import { a } from "./d/e.ts";'],
      ["/x/d/e.ts", 'export const a = await import("../f.ts");'],
      ["/x/f.ts", "export const f = 1;"],
    ]);
    assert.deepEqual(findCycles(files), [["/x/a.ts", "/x/b.ts", "/x/a.ts"]]);
  });

  it("none in the sources of any workspace", () => {
    const files = new Map(
      SOURCE_ROOTS.flatMap(sourceFiles).map((path) => [path, readFileSync(path, "utf8")] as const),
    );
    assert.ok(files.size > 100, `read the sources (${files.size} files)`);
    const cycles = findCycles(files).map((cycle) =>
      cycle.map((path) => relative(ROOT, path)).join(" -> "),
    );
    assert.deepEqual(cycles, []);
  });
});
