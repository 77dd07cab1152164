/**
 * Builds the web app into `apps/web/dist` when it is missing or older than its sources (the
 * app's own files and the packages it bundles). `npm start` runs this first (root `prestart`),
 * so a fresh clone needs no separate step; `--force` always builds (`npm run build:web`).
 *
 * Safe to run from several processes at once (parallel test files): one builds while the others
 * wait on a lock directory, then find the build fresh. The new build is written next to `dist`
 * and swapped in, so a reader never sees a half-written directory.
 */
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(WEB_DIR, "..", "..");
export const DIST_DIR = join(WEB_DIR, "dist");
const LOCK_DIR = join(WEB_DIR, ".build-lock");
/** A lock older than this was left by a process that died: taken over. */
const STALE_LOCK_MS = 120_000;

/** What the bundle is made of: a change in any of these makes `dist` stale. */
const SOURCES = [
  join(WEB_DIR, "app"),
  join(WEB_DIR, "public"),
  join(WEB_DIR, "index.html"),
  join(WEB_DIR, "vite.config.ts"),
  join(WEB_DIR, "package.json"),
  join(ROOT, "packages", "client", "src"),
  join(ROOT, "packages", "react", "src"),
  join(ROOT, "packages", "protocol", "src"),
];

/** Test files and test doubles are not bundled. */
function bundled(path: string): boolean {
  return !/\.test\.tsx?$/.test(path) && !/[\\/]testing[\\/]/.test(path);
}

async function newestMtime(path: string): Promise<number> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    return 0;
  }
  if (!info.isDirectory()) return bundled(path) ? info.mtimeMs : 0;
  let newest = 0;
  for (const entry of await readdir(path)) {
    newest = Math.max(newest, await newestMtime(join(path, entry)));
  }
  return newest;
}

async function builtAt(): Promise<number> {
  try {
    return (await stat(join(DIST_DIR, "index.html"))).mtimeMs;
  } catch {
    return 0;
  }
}

async function isFresh(): Promise<boolean> {
  const built = await builtAt();
  if (built === 0) return false;
  const sources = Math.max(...(await Promise.all(SOURCES.map(newestMtime))));
  return sources <= built;
}

async function lock(): Promise<() => Promise<void>> {
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      return () => rm(LOCK_DIR, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age =
        Date.now() -
        (await stat(LOCK_DIR).then(
          (s) => s.mtimeMs,
          () => Date.now(),
        ));
      if (age > STALE_LOCK_MS) await rm(LOCK_DIR, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

export interface EnsureOptions {
  /** Build even when `dist` is fresh. */
  readonly force?: boolean;
  /** Progress lines; default none. */
  readonly log?: (line: string) => void;
}

/** Builds `dist` if needed; resolves with what it did. */
export async function ensureWebBuilt(options: EnsureOptions = {}): Promise<"fresh" | "built"> {
  const log = options.log ?? (() => {});
  if (!options.force && (await isFresh())) return "fresh";
  const unlock = await lock();
  try {
    if (!options.force && (await isFresh())) return "fresh";
    const started = performance.now();
    log("building the web app (apps/web) …");
    const outDir = join(WEB_DIR, `.dist-${process.pid}`);
    const { build } = await import("vite");
    await build({
      root: WEB_DIR,
      configFile: join(WEB_DIR, "vite.config.ts"),
      logLevel: "warn",
      build: { outDir, emptyOutDir: true },
    });
    const old = join(WEB_DIR, `.dist-old-${process.pid}`);
    await rename(DIST_DIR, old).catch(() => undefined);
    await rename(outDir, DIST_DIR);
    await rm(old, { recursive: true, force: true });
    const ms = Math.round(performance.now() - started);
    log(`built ${relative(ROOT, DIST_DIR)} in ${ms} ms`);
    return "built";
  } finally {
    await unlock();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const force = process.argv.includes("--force");
  const result = await ensureWebBuilt({ force, log: (line) => console.log(`web: ${line}`) });
  if (result === "fresh") console.log("web: apps/web/dist is up to date");
}
