/**
 * A project outside the workspace that installs the published packages as a user does: every
 * package packed (`packPackages`, the same path as `npm run pack:packages`) and the tarballs
 * installed with npm, next to the third-party packages the test names — at the versions the
 * workspace installed, so npm finds them in its cache and the install needs no network.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { npmEnv, packPackages, ROOT, run } from "../../scripts/packages.ts";

export interface ConsumerProject {
  /** The temporary directory holding `packs/` (the tarballs) and `app/` (the project). */
  readonly work: string;
  readonly app: string;
  /** The packed tarballs, in `PUBLISHED` order. */
  readonly tarballs: readonly string[];
  /** Removes everything. */
  remove(): Promise<void>;
}

/** The version of `name` the workspace installed. */
export async function workspaceVersion(name: string): Promise<string> {
  const manifest = JSON.parse(
    await readFile(join(ROOT, "node_modules", name, "package.json"), "utf8"),
  ) as { version: string };
  return manifest.version;
}

/**
 * A new project named `name` (an ES module package) with `files` written into it, the packed
 * packages and `extras` (package names, at the workspace's versions) installed.
 */
export async function installConsumer(options: {
  readonly name: string;
  readonly extras: readonly string[];
  readonly files?: Readonly<Record<string, string>>;
}): Promise<ConsumerProject> {
  const work = await mkdtemp(join(tmpdir(), `${options.name}-`));
  const remove = () => rm(work, { recursive: true, force: true });
  try {
    const packs = join(work, "packs");
    await mkdir(packs);
    const tarballs = await packPackages(packs);
    const app = join(work, "app");
    await mkdir(app);
    const files = {
      "package.json": JSON.stringify({ name: options.name, private: true, type: "module" }),
      ...options.files,
    };
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(app, path, ".."), { recursive: true });
      await writeFile(join(app, path), text);
    }
    const extras = await Promise.all(
      options.extras.map(async (extra) => `${extra}@${await workspaceVersion(extra)}`),
    );
    await run(
      "npm",
      [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        ...tarballs,
        ...extras,
      ],
      { cwd: app, env: npmEnv() },
    );
    return { work, app, tarballs, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
