/**
 * Builds and packs the packages other projects install: `@realtime/protocol`, `@realtime/server`,
 * `@realtime/redis`, `@realtime/client` and `@realtime/react` (the list is {@link PUBLISHED}).
 *
 *   node scripts/packages.ts build            packages/<each>/dist (`npm run build`)
 *   node scripts/packages.ts pack [out-dir]   build, then one .tgz per package (default `.pack/`)
 *
 * Why packing goes through a staging directory: inside the workspace every package's `exports`
 * point at `src/*.ts`, so `npm start`, the tests, the processes they spawn and the Vite build run
 * the sources with no build step and no resolution flag to forget. A published package must point
 * at `dist` instead. `pack` copies each package into a staging directory, builds its `dist`
 * there, writes the publish manifest (`exports` on `dist`, no `private`, `scripts` or
 * `devDependencies`) and packs that; the tests in `e2e/packages/` install exactly these tarballs.
 * Packing a package straight from the workspace would ship `exports` on `.ts` sources, so its
 * `prepack` refuses.
 */
import { spawn } from "node:child_process";
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The published packages (directories under `packages/`), dependencies before their dependents:
 * the build order, since each one compiles against the `dist` types of those before it. A new
 * package goes here after the ones it imports, with a `tsconfig.build.json`, README, LICENSE and
 * CHANGELOG like theirs, and into `fixed` in `.changeset/config.json`
 * (`e2e/packages/changesets.test.ts` checks that list against this one).
 */
export const PUBLISHED = ["protocol", "server", "redis", "fastify", "client", "react"] as const;

export type PublishedPackage = (typeof PUBLISHED)[number];

/**
 * Files that `tsc` does not emit but the built modules read at run time, by extension: copied
 * from `src` to the same place under `dist`. `@realtime/redis` reads its Lua scripts relative to
 * its module URL (`new URL("./lua/", import.meta.url)`), so they must sit beside `dist/lua.js`.
 */
const ASSET_EXTENSIONS = [".lua"];

/** Only the main entry is published; `./testing` entries stay workspace-only. */
const ENTRY = "./src/index.ts";

type Manifest = Record<string, unknown> & { name: string; exports: Record<string, unknown> };

const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");

export function packageDir(name: PublishedPackage): string {
  return join(ROOT, "packages", name);
}

/**
 * The environment for an `npm` run outside the workspace: without the `npm_config_*` that an
 * enclosing `npm run` exports (its prefix and workspace would redirect the inner command), but
 * with the cache and registry settings so installs stay offline-capable.
 */
export function npmEnv(): NodeJS.ProcessEnv {
  const keep = /^npm_config_(cache|registry|userconfig|offline|prefer_offline)$/i;
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && !keep.test(key)) continue;
    env[key] = value;
  }
  return env;
}

/** Runs a command; rejects with its output when it exits non-zero. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolvePromise(output);
      else reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${output}`));
    });
  });
}

/**
 * Compiles the published packages of `names` (default all) under `root` (default the workspace;
 * `packPackages` builds in a staging tree) to their `dist` (JavaScript, `.d.ts`, declaration
 * maps, assets). A package compiles once those of `names` it depends on are built (one outside
 * `names` must be built already); those that wait on nothing more compile side by side.
 */
export async function buildPackages(
  names: readonly PublishedPackage[] = PUBLISHED,
  root: string = ROOT,
): Promise<void> {
  const built = new Map<PublishedPackage, Promise<void>>();
  for (const name of PUBLISHED.filter((candidate) => names.includes(candidate))) {
    const deps = (await realtimeDependencies(name)).flatMap((dep) => {
      const build = built.get(dep);
      return build === undefined ? [] : [build];
    });
    built.set(
      name,
      Promise.all(deps).then(() => buildPackage(join(root, "packages", name))),
    );
  }
  await Promise.all(built.values());
}

async function buildPackage(dir: string): Promise<void> {
  // A module deleted from src must not survive in dist and get packed.
  await rm(join(dir, "dist"), { recursive: true, force: true });
  await run(process.execPath, [TSC, "-p", join(dir, "tsconfig.build.json")]);
  await copyAssets(join(dir, "src"), join(dir, "dist"));
}

/** The published packages `name` depends on (its `@realtime/*` dependencies). */
async function realtimeDependencies(name: PublishedPackage): Promise<PublishedPackage[]> {
  const manifest = JSON.parse(await readFile(join(packageDir(name), "package.json"), "utf8")) as {
    dependencies?: Record<string, string>;
  };
  return Object.keys(manifest.dependencies ?? {})
    .filter((dep) => dep.startsWith("@realtime/"))
    .map((dep) => {
      const short = dep.slice("@realtime/".length);
      const published = PUBLISHED.find((candidate) => candidate === short);
      if (!published) throw new Error(`${name} depends on ${dep}, which is not published`);
      return published;
    });
}

/** Copies every asset under `src` (not tests, not `testing`) to the same path under `dist`. */
async function copyAssets(src: string, dist: string): Promise<void> {
  const files = await readdir(src, { recursive: true });
  for (const file of files) {
    if (!ASSET_EXTENSIONS.includes(extname(file))) continue;
    if (file.split(sep).some((part) => part.startsWith("testing"))) continue;
    await mkdir(dirname(join(dist, file)), { recursive: true });
    await copyFile(join(src, file), join(dist, file));
  }
}

/** The manifest as published: the workspace manifest with its `exports` moved onto `dist`. */
export function publishManifest(source: Manifest): Manifest {
  const { private: _private, scripts: _scripts, devDependencies: _dev, ...manifest } = source;
  if (source.exports["."] !== ENTRY) {
    throw new Error(`${source.name}: expected exports["."] to be ${ENTRY}`);
  }
  return {
    ...manifest,
    name: source.name,
    exports: {
      ".": {
        types: "./dist/index.d.ts",
        import: "./dist/index.js",
        default: "./dist/index.js",
      },
      "./package.json": "./package.json",
    },
  };
}

/**
 * Stages, builds and packs every published package into `outDir`; returns the tarball paths, in
 * {@link PUBLISHED} order.
 *
 * Each package is copied (without `node_modules` and `dist`) into a private staging tree under
 * `.pack/` and compiled there, never into `packages/<name>/dist`: the install tests pack at the
 * same time (`node --test` runs files in parallel) and a build that empties the workspace's
 * `dist` would pull the files from under the other's copy. The tree mirrors the workspace (root
 * tsconfigs, `packages/<name>`), so each `tsconfig.build.json` resolves as it does at home —
 * `extends`, the `paths` onto a sibling's `dist`, `node_modules` up in the workspace.
 */
export async function packPackages(outDir: string): Promise<string[]> {
  await mkdir(join(ROOT, ".pack"), { recursive: true });
  const stageRoot = await mkdtemp(join(ROOT, ".pack", "stage-"));
  try {
    for (const config of ["tsconfig.json", "tsconfig.build.json"]) {
      await cp(join(ROOT, config), join(stageRoot, config));
    }
    for (const name of PUBLISHED) {
      const dir = packageDir(name);
      await cp(dir, join(stageRoot, "packages", name), {
        recursive: true,
        filter: (path) => {
          const [top] = relative(dir, path).split(sep);
          return top !== "node_modules" && top !== "dist";
        },
      });
    }
    await buildPackages(PUBLISHED, stageRoot);
    // Packed side by side.
    return await Promise.all(
      PUBLISHED.map(async (name) => {
        const stage = join(stageRoot, "packages", name);
        const source = JSON.parse(
          await readFile(join(packageDir(name), "package.json"), "utf8"),
        ) as Manifest;
        await writeFile(
          join(stage, "package.json"),
          `${JSON.stringify(publishManifest(source), null, 2)}\n`,
        );
        const out = await run("npm", ["pack", "--json", "--pack-destination", outDir], {
          cwd: stage,
          env: npmEnv(),
        });
        const [packed] = JSON.parse(out.slice(out.indexOf("["))) as [{ filename: string }];
        return join(outDir, packed.filename);
      }),
    );
  } finally {
    await rm(stageRoot, { recursive: true, force: true });
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, outDir] = argv;
  if (command === "build") {
    await buildPackages();
  } else if (command === "pack") {
    const out = resolve(outDir ?? join(ROOT, ".pack"));
    await mkdir(out, { recursive: true });
    for (const tarball of await packPackages(out)) console.log(tarball);
  } else if (command === "refuse-workspace-pack") {
    console.error(
      "This package's workspace manifest points at src/*.ts. Pack it with `npm run pack:packages`, " +
        "which builds dist and packs a publish manifest.",
    );
    process.exitCode = 1;
  } else {
    console.error("usage: node scripts/packages.ts build | pack [out-dir]");
    process.exitCode = 2;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
