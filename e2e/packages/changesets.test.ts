/**
 * The changesets setup (`.changeset/config.json`) does what docs/releasing.md says: run on a
 * copy of the workspace's manifests (a new git repository, so the real one is never touched),
 * one changeset for `@realtime/redis` moves all the published packages to the next version
 * together, writes each one's CHANGELOG entry, keeps every `@realtime/*` dependency in the
 * workspace (the private apps' too) on the new version so npm still links the workspace copies,
 * and versions no private package.
 */
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { npmEnv, PUBLISHED, ROOT, run } from "../../scripts/packages.ts";

const CHANGESET = join(ROOT, "node_modules", "@changesets", "cli", "bin.js");
const PUBLISHED_NAMES = PUBLISHED.map((name) => `@realtime/${name}`);

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

let repo = "";
let workspaces: string[] = [];

before(async () => {
  repo = await mkdtemp(join(tmpdir(), "realtime-changesets-"));
  const root = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
    workspaces: string[];
  };
  workspaces = root.workspaces;
  // What changesets reads: the root manifest and lock file (how it finds the workspaces), the
  // config, and every workspace's manifest and changelog.
  await cp(join(ROOT, ".changeset", "config.json"), join(repo, ".changeset", "config.json"));
  for (const file of ["package.json", "package-lock.json"]) {
    await cp(join(ROOT, file), join(repo, file));
  }
  for (const dir of workspaces) {
    await mkdir(join(repo, dir), { recursive: true });
    await cp(join(ROOT, dir, "package.json"), join(repo, dir, "package.json"));
    if (PUBLISHED.some((name) => dir === `packages/${name}`)) {
      await cp(join(ROOT, dir, "CHANGELOG.md"), join(repo, dir, "CHANGELOG.md"));
    }
  }
  // The changelog generator named in the config resolves from the project's node_modules.
  await symlink(join(ROOT, "node_modules"), join(repo, "node_modules"), "dir");
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=test", "-c", "user.email=test@example.com", ...args], {
      cwd: repo,
    });
  await git("init", "-q", "-b", "main");
  await git("add", "-A");
  await git("-c", "commit.gpgsign=false", "commit", "-q", "-m", "workspace manifests");
});

after(async () => {
  if (repo) await rm(repo, { recursive: true, force: true });
});

async function manifest(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(repo, dir, "package.json"), "utf8")) as Manifest;
}

function changeset(...args: string[]): Promise<string> {
  return run(process.execPath, [CHANGESET, ...args], { cwd: repo, env: npmEnv() });
}

test("the config fixes the published packages together and ignores every private workspace", async () => {
  const config = JSON.parse(await readFile(join(repo, ".changeset", "config.json"), "utf8")) as {
    fixed: string[][];
    ignore: string[];
    access: string;
  };
  assert.deepEqual(
    config.fixed,
    [PUBLISHED_NAMES],
    "fixed: exactly PUBLISHED (scripts/packages.ts)",
  );
  assert.equal(config.access, "public");
  const privates: string[] = [];
  for (const dir of workspaces) {
    const { name, private: isPrivate } = await manifest(dir);
    if (PUBLISHED_NAMES.includes(name)) assert.notEqual(isPrivate, true, `${name} is published`);
    else privates.push(name);
  }
  assert.deepEqual(config.ignore.toSorted(), privates.toSorted());
});

test("one changeset moves every published package to the next version, with its changelog", async () => {
  await writeFile(
    join(repo, ".changeset", "redis-publisher-retries.md"),
    '---\n"@realtime/redis": minor\n---\n\nA test change to the Redis publisher.\n',
  );
  await changeset("status", "--output=status.json");
  const status = JSON.parse(await readFile(join(repo, "status.json"), "utf8")) as {
    releases: { name: string; type: string; newVersion: string }[];
  };
  assert.deepEqual(
    status.releases
      .filter((release) => release.type !== "none")
      .map((release) => `${release.name}@${release.newVersion}`)
      .toSorted(),
    PUBLISHED_NAMES.map((name) => `${name}@0.2.0`).toSorted(),
  );
  await rm(join(repo, "status.json"));

  await changeset("version");
  for (const dir of workspaces) {
    const pkg = await manifest(dir);
    const published = PUBLISHED_NAMES.includes(pkg.name);
    assert.equal(pkg.version, published ? "0.2.0" : "0.1.0", `${pkg.name}: version`);
    for (const [dep, range] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
      if (PUBLISHED_NAMES.includes(dep)) assert.equal(range, "0.2.0", `${pkg.name} → ${dep}`);
    }
  }
  for (const name of PUBLISHED) {
    const changelog = await readFile(join(repo, "packages", name, "CHANGELOG.md"), "utf8");
    assert.match(changelog, new RegExp(`^# @realtime/${name}\\n\\n## 0\\.2\\.0\\n`), name);
    assert.match(changelog, /\n## 0\.1\.0\n/, `${name}: the 0.1.0 entry is kept`);
  }
  const redis = await readFile(join(repo, "packages", "redis", "CHANGELOG.md"), "utf8");
  assert.match(redis, /### Minor Changes\n\n- A test change to the Redis publisher\.\n/);
});
