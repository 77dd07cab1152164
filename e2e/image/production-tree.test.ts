/**
 * What the container image runs, without a container engine: the `Dockerfile`'s runtime stage
 * replayed into a temporary directory (its COPY lines in order, the prebuilt web app from the
 * build stage, its own `npm ci --omit=dev` line run there), made read-only as the image's
 * root-owned files are, and started with the image's ENTRYPOINT and environment
 * (`NODE_ENV=production`) on this machine's Node 24 — the base image's Node. The pod serves its
 * health, the prebuilt page and a stream with a published event; the worker started from the same
 * tree renders a job the pod queued; both exit 0 on SIGTERM. Plus a few lint-level checks of the
 * Dockerfile itself (non-root, signals, healthcheck, pinned base image).
 *
 * A runtime import that is only a dev dependency, a source directory the Dockerfile forgets to
 * copy, or a step that needs the repository's own Node fails here.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { inspectGif } from "@realtime/jobs/testing";
import type { TestChild } from "@realtime/testkit/child-process";
import { launchPod, POD_SECRET, type Pod } from "@realtime/testkit/pods";
import { freePort, startRedis, type TestRedis } from "@realtime/testkit/redis";
import { prepareWebApp } from "@realtime/testkit/service";
import { openHttp1, type SseClient } from "@realtime/testkit/sse-client";
import { startWorker } from "@realtime/testkit/worker";
import { SHIPPED_NODE_OPTIONS } from "../../bench/src/servers.ts";
import { npmEnv, ROOT, run } from "../../scripts/packages.ts";
import {
  envPairs,
  execForm,
  instructions,
  parseDockerfile,
  type Replayed,
  replayStage,
  runCommands,
  type Stage,
  splitFlags,
} from "./dockerfile.ts";

const run$ = promisify(execFile);
const DOCKERFILE = await readFile(join(ROOT, "Dockerfile"), "utf8");
const stages = parseDockerfile(DOCKERFILE);
const runtime = stages.at(-1) as Stage;
const build = stages.find((stage) => stage.name === "build");

const single = (stage: Stage, keyword: string): string => {
  const found = instructions(stage, keyword);
  assert.equal(found.length, 1, `one ${keyword} in the runtime stage`);
  return found[0]?.args ?? "";
};

/** `chmod -R a-w` (or back to `u+w`): the image's files are root's, the service runs as `node`. */
async function writable(path: string, on: boolean): Promise<void> {
  for (const entry of await readdir(path, { withFileTypes: true, recursive: true })) {
    if (entry.isSymbolicLink()) continue;
    const full = join(entry.parentPath, entry.name);
    await chmod(full, entry.isDirectory() ? (on ? 0o755 : 0o555) : on ? 0o644 : 0o444);
  }
  await chmod(path, on ? 0o755 : 0o555);
}

describe("the Dockerfile", () => {
  it("has a build stage that builds the web app and a runtime stage on the same pinned Node", async () => {
    const nodeMajor = /\d+/.exec(
      (
        JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
          devDependencies: Record<string, string>;
        }
      ).devDependencies.node ?? "",
    )?.[0];
    assert.ok(build, "a stage named build");
    assert.ok(stages.length >= 2 && runtime !== build, "multi-stage: the runtime is not the build");
    for (const stage of stages) {
      // A major tag the repository pins too (its `node` dev dependency): not `latest`, no digits
      // that would freeze security fixes.
      assert.match(stage.from, new RegExp(`^node:${nodeMajor}(-[a-z]+)?$`), stage.from);
    }
    assert.ok(
      instructions(build, "RUN").some((r) => r.args.includes("node apps/web/build.ts")),
      "the build stage builds apps/web/dist",
    );
  });

  it("runs the runtime stage as a non-root user, behind tini, with SIGTERM and a healthcheck", () => {
    const user = single(runtime, "USER");
    assert.ok(!["root", "0", "0:0"].includes(user), `USER ${user}`);
    const userLine = instructions(runtime, "USER")[0]?.line ?? Infinity;
    const entrypoint = execForm(single(runtime, "ENTRYPOINT"));
    assert.deepEqual(entrypoint.slice(0, 3), ["tini", "--", "node"]);
    assert.ok((instructions(runtime, "ENTRYPOINT")[0]?.line ?? 0) > userLine);
    assert.ok(
      instructions(runtime, "RUN").some((r) =>
        runCommands(r).some((c) => c[0] === "apt-get" && c.includes("tini")),
      ),
      "tini is installed",
    );
    assert.equal(single(runtime, "STOPSIGNAL"), "SIGTERM");
    const { flags, rest } = splitFlags(single(runtime, "HEALTHCHECK"));
    assert.ok(flags.has("interval") && flags.has("timeout"), "the healthcheck is bounded");
    assert.match(rest, /^CMD \[/, "exec form: no shell in the image's healthcheck");
    // The entry point's own healthcheck command, on the base image's node.
    assert.deepEqual(execForm(rest.slice(4)), ["node", entrypoint[3], "healthcheck"]);
    assert.deepEqual(execForm(single(runtime, "CMD")), ["pod"]);
    const env = Object.assign({}, ...instructions(runtime, "ENV").map((e) => envPairs(e.args)));
    assert.equal(env.NODE_ENV, "production");
    assert.equal(single(runtime, "EXPOSE"), env.PORT);
  });

  it("caps V8's young generation as `npm start` and the bench do, and an operator's NODE_OPTIONS wins", async () => {
    const env = Object.assign({}, ...instructions(runtime, "ENV").map((e) => envPairs(e.args)));
    assert.equal(env.NODE_OPTIONS, SHIPPED_NODE_OPTIONS, "the image's NODE_OPTIONS");
    const service = JSON.parse(await readFile(join(ROOT, "apps/service/package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    // `npm start` puts the shipped flags ahead of the caller's own NODE_OPTIONS.
    const prefix = `NODE_OPTIONS="${SHIPPED_NODE_OPTIONS} $NODE_OPTIONS" `;
    assert.equal(service.scripts.start, `${prefix}node src/main.ts`);
    // What V8 makes of it: the young generation (two semi-spaces) once a loop that keeps some of
    // what it allocates has grown it as far as it may.
    const probe = [
      "const v8 = require('node:v8'); const keep = [];",
      "for (let i = 0; i < 2e6; i++) { keep.push({ i }); if (keep.length > 3e5) keep.splice(0, 1.5e5); }",
      "const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');",
      "console.log(s.space_size / 1048576);",
    ].join(" ");
    const youngMb = async (operator: string) => {
      const { stdout } = await run$("/bin/sh", ["-c", `${prefix}"$NODE" -e "$PROBE"`], {
        env: {
          PATH: process.env.PATH,
          NODE: process.execPath,
          PROBE: probe,
          NODE_OPTIONS: operator,
        },
      });
      return Number(stdout);
    };
    const shipped = await youngMb("");
    assert.ok(shipped > 2 && shipped <= 32, `the shipped cap: ${shipped} MB`);
    // An operator's own value comes later on the line, and the last one is the one V8 keeps.
    const operator = await youngMb("--max-semi-space-size=1");
    assert.ok(operator <= 2, `the operator's cap: ${operator} MB`);
  });

  it("copies every workspace manifest before npm ci --omit=dev, and never node_modules or a local build", async () => {
    const root = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      workspaces: string[];
    };
    const ci = instructions(runtime, "RUN").find((r) => /\bnpm ci\b/.test(r.args));
    assert.ok(ci);
    assert.match(ci.args, /npm ci --omit=dev/);
    const copiedBefore = instructions(runtime, "COPY")
      .filter((c) => c.line < ci.line)
      .map((c) => c.args)
      .join(" ");
    for (const workspace of [".", ...root.workspaces]) {
      const manifest = workspace === "." ? "package.json" : `${workspace}/package.json`;
      assert.ok(copiedBefore.split(/\s+/).includes(manifest), `${manifest} before npm ci`);
    }
    assert.ok(copiedBefore.split(/\s+/).includes("package-lock.json"));
    const ignored = (await readFile(join(ROOT, ".dockerignore"), "utf8")).split("\n");
    for (const pattern of ["**/node_modules", "**/dist", ".git"]) {
      assert.ok(ignored.includes(pattern), `.dockerignore has ${pattern}`);
    }
  });
});

describe("the production tree the image holds", () => {
  let work = "";
  let tree = "";
  let replayed: Replayed;
  let redis: TestRedis | undefined;
  let pod: Pod | undefined;
  let worker: TestChild | undefined;
  let env: Record<string, string> = {};
  let entry: [string, ...string[]];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "realtime-image-"));
    tree = join(work, "app");
    const [, redisStarted] = await Promise.all([
      (async () => {
        await prepareWebApp(); // what the build stage's `node apps/web/build.ts` makes
        const workdir = build ? single(build, "WORKDIR") : "/";
        replayed = await replayStage(runtime, {
          context: ROOT,
          stageRoots: { build: { workdir, root: ROOT } },
          tree,
          npm: (args, stageEnv) =>
            run("npm", args, {
              cwd: tree,
              env: {
                ...npmEnv(),
                ...stageEnv,
                // The base image's Node is this one (the repository's Node 24), not the system's.
                PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
                // From the cache when it can: same packages, no waiting on the registry.
                npm_config_prefer_offline: "true",
              },
            }).then(() => undefined),
        });
        await writable(tree, false);
      })(),
      startRedis(),
    ]);
    redis = redisStarted;
    // tini -- node <script> …: the script, in the tree standing for WORKDIR.
    const [, , , script = "", ...entryArgs] = execForm(single(runtime, "ENTRYPOINT"));
    entry = [join(tree, script.replace(new RegExp(`^${replayed.workdir}/?`), "")), ...entryArgs];
    env = {
      ...replayed.env,
      // Not the image's 8080 on every interface: a free port on loopback of a shared machine.
      HOST: "127.0.0.1",
      PORT: String(await freePort()),
      LOG_LEVEL: "info",
      JWT_SECRET: POD_SECRET,
      REDIS_URL: redis.url,
      REDIS_PREFIX: `rtimage${randomBytes(4).toString("hex")}`,
      SHUTDOWN_DRAIN_MS: "500",
      JOBS_FRAMES: "12",
      JOBS_FRAME_SIZE: "64",
      JOBS_PROGRESS_INTERVAL_MS: "50",
      JOBS_CONCURRENCY: "1",
    };
  });

  after(async () => {
    await Promise.all([pod?.kill("SIGKILL"), worker?.kill("SIGKILL")]);
    await redis?.stop();
    if (tree && existsSync(tree)) await writable(tree, true);
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** `docker run IMAGE <args>` for a command that ends: its stdout, or a rejection. */
  const image = async (args: readonly string[], extra: Record<string, string> = {}) => {
    const { stdout } = await run$(process.execPath, [...entry.slice(0, 1), ...args], {
      cwd: tree,
      env: { PATH: process.env.PATH ?? "", ...env, ...extra },
      timeout: 15_000,
    });
    return stdout.trim();
  };

  it("holds the production dependencies and none of the dev ones", async () => {
    assert.deepEqual(replayed.aptPackages, ["tini"]);
    assert.ok(replayed.npmCi.includes("--omit=dev"));
    const lock = JSON.parse(await readFile(join(tree, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, info]) => info.dev === true && path.includes("node_modules/"))
      .map(([path]) => path);
    assert.ok(devOnly.length > 100, `the lockfile marks dev packages (${devOnly.length})`);
    const present = devOnly.filter((path) => existsSync(join(tree, path)));
    assert.deepEqual(present, [], "dev-only packages in the production tree");
    for (const name of ["vite", "typescript", "@biomejs/biome", "node", "pino-pretty"]) {
      assert.ok(!existsSync(join(tree, "node_modules", name)), `${name} is a dev dependency`);
    }
    // Only the service's own: not what the benchmarks or the (prebuilt) web app run on.
    for (const name of ["better-sse", "react", "react-dom"]) {
      assert.ok(!existsSync(join(tree, "node_modules", name)), `${name} is not the service's`);
    }
    for (const name of ["fastify", "ioredis", "bullmq", "pino", "@realtime/server"]) {
      assert.ok(existsSync(join(tree, "node_modules", name)), `${name} is installed`);
    }
    assert.ok(existsSync(join(tree, "apps/web/dist/index.html")), "the prebuilt web app");
  });

  it("starts the pod by its default command with NODE_ENV=production: health, readiness, the page", async () => {
    const cmd = execForm(single(runtime, "CMD"));
    pod = await launchPod(env, {
      command: [entry[0], ...entry.slice(1), ...cmd],
      cwd: tree,
      readyTimeoutMs: 20_000,
    });
    assert.match(pod.output(), /"msg":"realtime is ready"/, "JSON logs, as in production");
    assert.match(pod.output(), /"mode":"standalone"/, "Redis mode: the pod only queues jobs");
    assert.equal((await fetch(`${pod.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${pod.url}/readyz`)).status, 200);
    // Production: no dev login.
    const login = await fetch(`${pod.url}/api/auth/dev-login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Ada" }),
    });
    assert.equal(login.status, 403);

    const page = await fetch(`${pod.url}/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.equal(html, await readFile(join(tree, "apps/web/dist/index.html"), "utf8"));
    const script = /<script[^>]+src="([^"]+)"/.exec(html)?.[1];
    assert.ok(script, "the page loads its bundle");
    const bundle = await fetch(`${pod.url}${script}`);
    assert.equal(bundle.status, 200);
    assert.match(bundle.headers.get("cache-control") ?? "", /immutable/);
  });

  it("answers the HEALTHCHECK command while the pod runs, and fails it where nothing listens", async () => {
    assert.ok(pod);
    const healthcheck = execForm(splitFlags(single(runtime, "HEALTHCHECK")).rest.slice(4));
    const args = healthcheck.slice(2); // node <script> …
    await image(args, { PORT: String(pod.port) });
    const closed = String(await freePort());
    await assert.rejects(
      image(args, { PORT: closed }),
      (error: { code?: number; stderr?: string }) => {
        assert.equal(error.code, 1);
        assert.match(
          error.stderr ?? "",
          /healthcheck: GET http:\/\/127\.0\.0\.1:\d+\/healthz answered nothing/,
        );
        return true;
      },
    );
  });

  it("refuses a command it does not know, or arguments to the pod, with its usage (exit 64)", async () => {
    for (const args of [["serve"], ["pod", "--port", "1"]]) {
      await assert.rejects(image(args), (error: { code?: number; stderr?: string }) => {
        assert.equal(error.code, 64);
        assert.match(error.stderr ?? "", /usage: pod \| worker \| realtime <command>/);
        return true;
      });
    }
  });

  it("streams an event published with a service token the image's CLI minted", async () => {
    assert.ok(pod);
    const userToken = await image(["realtime", "token", "--user", "u_image", "--name", "Image"]);
    const serviceToken = await image(["realtime", "token", "image-test", "publish"]);
    const stream = await openHttp1(`${pod.url}/api/events?channel=channel:general`, {
      authorization: `Bearer ${userToken}`,
    });
    try {
      assert.equal(stream.status, 200, stream.text());
      await stream.waitFor((e) => e.event === "ready");
      const response = await fetch(`${pod.url}/api/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${serviceToken}`, "content-type": "application/json" },
        body: JSON.stringify({ channel: "channel:general", event: { type: "image", n: 1 } }),
      });
      assert.equal(response.status, 202, await response.clone().text());
      const event = await stream.waitFor((e) => e.data.includes('"type":"image"'), 10_000);
      assert.equal((JSON.parse(event.data) as { n: number }).n, 1);
    } finally {
      stream.close();
    }
  });

  it("runs the worker from the same tree by its command; a job the pod queued renders there", async () => {
    assert.ok(pod);
    worker = await startWorker(env, {
      command: [entry[0], ...entry.slice(1), "worker"],
      cwd: tree,
    });
    assert.match(worker.output(), /"msg":"realtime worker is ready"/);
    const token = await image(["realtime", "token", "--user", "u_jobs", "--name", "Jobs"]);
    let stream: SseClient | undefined;
    try {
      stream = await openHttp1(`${pod.url}/api/events?channel=user:u_jobs`, {
        authorization: `Bearer ${token}`,
      });
      assert.equal(stream.status, 200, stream.text());
      await stream.waitFor((e) => e.event === "ready");
      const submitted = await fetch(`${pod.url}/api/generate/video`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: "from the image" }),
      });
      assert.equal(submitted.status, 202, await submitted.clone().text());
      const { jobId } = (await submitted.json()) as { jobId: string };
      const done = await stream.waitFor((e) => {
        const data = e.event === undefined ? (JSON.parse(e.data) as { jobId?: string }) : {};
        return data.jobId === jobId && /generation_(complete|failed|cancelled)/.test(e.data);
      }, 30_000);
      const result = JSON.parse(done.data) as { type: string; result?: { url: string } };
      assert.equal(result.type, "generation_complete", done.data);
      // In Redis mode the pod only queues: the worker process rendered it.
      await worker.waitFor(new RegExp(`"jobId":"${jobId}".*"msg":"job taken"`), 5_000);
      const media = await fetch(`${pod.url}${result.result?.url}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(media.status, 200);
      const gif = inspectGif(new Uint8Array(await media.arrayBuffer()));
      assert.equal(gif.frames, 12);
      assert.ok(gif.complete);
    } finally {
      stream?.close();
    }
  });

  it("stops the pod and the worker cleanly on the image's STOPSIGNAL", async () => {
    assert.ok(pod && worker);
    const signal = single(runtime, "STOPSIGNAL") as NodeJS.Signals;
    const [podExit, workerExit] = await Promise.all([pod.kill(signal), worker.kill(signal)]);
    assert.deepEqual(podExit, { code: 0, signal: null }, pod.output().slice(-2000));
    assert.deepEqual(workerExit, { code: 0, signal: null }, worker.output().slice(-2000));
    assert.match(pod.output(), /"msg":"SIGTERM: draining"/);
    assert.match(worker.output(), /"msg":"SIGTERM: finishing running jobs"/);
  });
});
