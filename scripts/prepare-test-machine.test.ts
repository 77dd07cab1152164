/**
 * `npm test`'s machine preparation: which tools are missing → which apt-get commands, or which
 * one-line error; when the shared Redis is started and how. The decisions run against a
 * recorded machine (nothing is installed, uninstalled or stopped); the probes and the script
 * itself run for real where that is safe.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  type Machine,
  MachineNotReady,
  missingRequirements,
  planInstall,
  prepareTestMachine,
  REDIS_START_TIMEOUT_MS,
  realMachine,
  requirements,
} from "./prepare-test-machine.ts";

const SCRIPT = fileURLToPath(new URL("./prepare-test-machine.ts", import.meta.url));
const ROOT = join(dirname(SCRIPT), "..");

const ALL = requirements({});
const pathOf = (tool: string) => ALL.find((r) => r.tool === tool)!.path;

interface FakeOptions {
  missing?: string[];
  isRoot?: boolean;
  hasAptGet?: boolean;
  /** Whether the shared Redis answers before anything is done. */
  redisUp?: boolean;
  /** PINGs a started redis-server fails before it answers; Infinity: never answers. */
  redisSlowPings?: number;
  /** Tools apt-get does not really install (the package lacks the path). */
  aptLeavesOut?: string[];
  failMkdir?: boolean;
}

/** A machine that records what is done to it; apt-get "installs" by making paths present. */
function recordedMachine(options: FakeOptions = {}) {
  const missing = new Set((options.missing ?? []).map(pathOf));
  const calls: string[] = [];
  const envs: (Record<string, string> | undefined)[] = [];
  let redisUp = options.redisUp ?? true;
  let slowPings = options.redisSlowPings ?? 0;
  let started = false;
  let clock = 0;
  const machine: Machine = {
    isExecutable: (path) => !missing.has(path),
    isRoot: options.isRoot ?? true,
    hasAptGet: options.hasAptGet ?? true,
    run(command, args, env) {
      calls.push([command, ...args].join(" "));
      envs.push(env);
      if (command === "apt-get" && args[0] === "install") {
        for (const r of ALL) {
          if (args.includes(r.aptPackage) && !options.aptLeavesOut?.includes(r.tool)) {
            missing.delete(r.path);
          }
        }
      }
      if (command === pathOf("redis-server")) started = true;
    },
    makeDirectory(path) {
      if (options.failMkdir) throw new Error(`EACCES: permission denied, mkdir '${path}'`);
      calls.push(`mkdir -p ${path}`);
    },
    redisAnswers(redisCli) {
      calls.push(`${redisCli} ping`);
      if (started && !redisUp) {
        if (slowPings > 0) slowPings--;
        else redisUp = true;
      }
      return redisUp;
    },
    now: () => clock,
    async pause(ms) {
      clock += ms;
    },
  };
  return { machine, calls, envs, elapsed: () => clock };
}

async function prepare(options: FakeOptions) {
  const recorded = recordedMachine(options);
  const logged: string[] = [];
  let error: unknown;
  try {
    await prepareTestMachine(recorded.machine, (line) => logged.push(line), ALL);
  } catch (caught) {
    error = caught;
  }
  return { ...recorded, logged, error };
}

const PING = "/usr/bin/redis-cli ping";

describe("prepare-test-machine: installing the missing tools", () => {
  it("does nothing but look when every tool is there and Redis answers: no apt call, no output", async () => {
    const { calls, logged, error } = await prepare({});
    assert.equal(error, undefined);
    assert.deepEqual(calls, [PING]);
    assert.deepEqual(logged, []);
  });

  it("as root with apt-get: runs apt-get update once, then installs exactly the missing packages", async () => {
    const { calls, envs, logged, error } = await prepare({ missing: ["chromium", "nginx"] });
    assert.equal(error, undefined);
    assert.deepEqual(calls, ["apt-get update -qq", "apt-get install -y -qq chromium nginx", PING]);
    assert.deepEqual(envs, [
      { DEBIAN_FRONTEND: "noninteractive" },
      { DEBIAN_FRONTEND: "noninteractive" },
    ]);
    assert.deepEqual(logged, ["installing chromium nginx (apt-get, as root)"]);
  });

  it("maps each tool to its Debian package: redis-cli comes from redis-tools", async () => {
    const { calls } = await prepare({ missing: ["redis-server", "redis-cli", "openssl"] });
    assert.deepEqual(calls.slice(0, 2), [
      "apt-get update -qq",
      "apt-get install -y -qq redis-server redis-tools openssl",
    ]);
  });

  it("not root: stops at once with one line naming the sudo apt-get command, runs nothing", async () => {
    const { calls, error } = await prepare({ missing: ["chromium", "nginx"], isRoot: false });
    assert.ok(error instanceof MachineNotReady);
    assert.doesNotMatch(error.message, /\n/);
    assert.match(error.message, /chromium \(\/usr\/bin\/chromium\), nginx \(\/usr\/sbin\/nginx\)/);
    assert.ok(
      error.message.endsWith(
        "run: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium nginx",
      ),
      error.message,
    );
    assert.deepEqual(calls, []);
  });

  it("not root: the suggested command installs promtool's package without Recommends, as root would", async () => {
    const { error } = await prepare({ missing: ["chromium", "promtool"], isRoot: false });
    assert.ok(error instanceof MachineNotReady);
    assert.ok(
      error.message.endsWith(
        "run: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus",
      ),
      error.message,
    );
  });

  it("no apt-get: stops at once naming the Debian packages to install, runs nothing", async () => {
    const { calls, error } = await prepare({ missing: ["openssl"], hasAptGet: false });
    assert.ok(error instanceof MachineNotReady);
    assert.doesNotMatch(error.message, /\n/);
    assert.match(error.message, /no apt-get/);
    assert.match(error.message, /`apt-get install -y openssl`/);
    assert.deepEqual(calls, []);
  });

  it("fails with the path still missing when apt-get did not provide it", async () => {
    const { error } = await prepare({ missing: ["chromium"], aptLeavesOut: ["chromium"] });
    assert.ok(error instanceof MachineNotReady);
    assert.match(error.message, /\/usr\/bin\/chromium is still missing/);
  });

  it("plans nothing when nothing is missing, whoever runs it", () => {
    assert.deepEqual(planInstall([], { isRoot: false, hasAptGet: false }), { kind: "ready" });
  });

  it("checks the paths the tests use, with the testkit's environment overrides", () => {
    const custom = requirements({
      REDIS_SERVER_BIN: "/opt/redis/bin/redis-server",
      REDIS_CLI_BIN: "/opt/redis/bin/redis-cli",
      NGINX_BIN: "/opt/nginx/sbin/nginx",
      OPENSSL_BIN: "/opt/ssl/bin/openssl",
      PROMTOOL_BIN: "/opt/prometheus/promtool",
    });
    assert.deepEqual(
      custom.map((r) => r.path),
      [
        "/opt/redis/bin/redis-server",
        "/opt/redis/bin/redis-cli",
        "/usr/bin/chromium",
        "/opt/nginx/sbin/nginx",
        "/opt/ssl/bin/openssl",
        "/opt/prometheus/promtool",
      ],
    );
    assert.deepEqual(
      ALL.map((r) => r.path),
      [
        "/usr/bin/redis-server",
        "/usr/bin/redis-cli",
        "/usr/bin/chromium",
        "/usr/sbin/nginx",
        "/usr/bin/openssl",
        "/usr/bin/promtool",
      ],
    );
  });

  it("installs promtool's package without its recommended services, apart from the others", async () => {
    const { calls, error } = await prepare({ missing: ["nginx", "promtool"] });
    assert.equal(error, undefined);
    assert.deepEqual(calls, [
      "apt-get update -qq",
      "apt-get install -y -qq nginx",
      "apt-get install -y -qq --no-install-recommends prometheus",
      PING,
    ]);
  });
});

describe("prepare-test-machine: the shared Redis", () => {
  const START =
    "/usr/bin/redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save  --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log";

  it("starts it exactly as CI does when PING fails, after making its directories, and waits for PING", async () => {
    const { calls, logged, error } = await prepare({ redisUp: false, redisSlowPings: 3 });
    assert.equal(error, undefined);
    assert.deepEqual(calls, [
      PING,
      "mkdir -p /var/lib/redis",
      "mkdir -p /var/log/redis",
      START,
      PING,
      PING,
      PING,
      PING,
    ]);
    assert.deepEqual(logged, ["starting the shared redis-server on 127.0.0.1:6379"]);
  });

  it("passes --save an empty argument (no RDB snapshots), not a missing one", async () => {
    const recorded = recordedMachine({ redisUp: false });
    const runs: (readonly string[])[] = [];
    const run = recorded.machine.run;
    recorded.machine.run = (command, args, env) => {
      runs.push(args);
      run(command, args, env);
    };
    await prepareTestMachine(recorded.machine, () => undefined, ALL);
    const args = runs[0]!;
    assert.equal(args[args.indexOf("--save") + 1], "");
  });

  it("installs first, then starts Redis with the freshly installed redis-server", async () => {
    const { calls } = await prepare({ missing: ["redis-server", "redis-cli"], redisUp: false });
    assert.deepEqual(calls.slice(0, 6), [
      "apt-get update -qq",
      "apt-get install -y -qq redis-server redis-tools",
      PING,
      "mkdir -p /var/lib/redis",
      "mkdir -p /var/log/redis",
      START,
    ]);
  });

  it("fails with the log file named when the started Redis never answers, within the bound", async () => {
    const { error, elapsed } = await prepare({ redisUp: false, redisSlowPings: Infinity });
    assert.ok(error instanceof MachineNotReady);
    assert.match(error.message, /did not answer PING within 10 s: see \/var\/log\/redis\/ci\.log/);
    assert.ok(elapsed() >= REDIS_START_TIMEOUT_MS && elapsed() < REDIS_START_TIMEOUT_MS + 1000);
  });

  it("when it cannot start it (not root), says in one line what to run as root", async () => {
    const { calls, error } = await prepare({ redisUp: false, isRoot: false, failMkdir: true });
    assert.ok(error instanceof MachineNotReady);
    assert.doesNotMatch(error.message, /\n/);
    assert.match(error.message, /EACCES/);
    assert.ok(
      error.message.includes(
        'run as root `mkdir -p /var/lib/redis /var/log/redis && /usr/bin/redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`',
      ),
      error.message,
    );
    assert.deepEqual(calls, [PING]);
  });
});

describe("prepare-test-machine on this machine", () => {
  const machine = realMachine();

  it("probes executables for real", () => {
    assert.equal(machine.isExecutable(process.execPath), true);
    assert.equal(machine.isExecutable(join(ROOT, "package.json")), false, "a file, not executable");
    assert.equal(machine.isExecutable(join(ROOT, "no-such-tool")), false);
    assert.deepEqual(
      missingRequirements(machine, [
        { tool: "node", path: process.execPath, aptPackage: "nodejs" },
        { tool: "ghost", path: join(ROOT, "no-such-tool"), aptPackage: "ghost" },
      ]).map((r) => r.tool),
      ["ghost"],
    );
  });

  it("pings the shared Redis for real (npm test's pretest started it), and fails to without redis-cli", () => {
    assert.equal(machine.redisAnswers(pathOf("redis-cli")), true);
    assert.equal(machine.redisAnswers(join(ROOT, "no-such-tool")), false);
  });

  it("the script on a prepared machine exits 0 and prints nothing: no apt-get, no Redis start", async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [SCRIPT], {
      cwd: ROOT,
    });
    assert.equal(stdout, "");
    assert.equal(stderr, "");
  });

  it("the script without apt-get on PATH and a tool missing exits 1 with one line, installing nothing", async () => {
    const result = await promisify(execFile)(process.execPath, [SCRIPT], {
      cwd: ROOT,
      env: { PATH: dirname(process.execPath), OPENSSL_BIN: join(ROOT, "no-such-openssl") },
    }).then(
      () => assert.fail("the script should have failed"),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.match(
      result.stderr,
      /^prepare-test-machine: npm test needs openssl \(.*no-such-openssl\), which this machine lacks, and it has no apt-get to install them: install the equivalent of the Debian packages \(`apt-get install -y openssl`\), then run npm test again\.\n$/,
    );
  });
});
