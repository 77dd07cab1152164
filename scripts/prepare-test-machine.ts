/**
 * Makes this machine able to run `npm test` (root `pretest`, before the web build), so that the
 * README's `npm install && npm test` is the whole set-up on a fresh Debian machine.
 *
 * It checks the system tools the tests run, at the paths the tests run them from:
 * `redis-server` and `redis-cli` (test Redis servers and the service's Redis), `chromium` (the
 * browser tests drive Debian's Chromium, never a downloaded browser), `nginx` (the deployment
 * tests run the reference topology), `openssl` (its certificates) and `promtool` (the alert
 * rules' tests; Debian's `prometheus` package, installed without its recommended node exporter
 * and collectors, which the tests do not use). When some are missing and
 * this runs as root with `apt-get`, it runs `apt-get update` once and installs the missing
 * packages; otherwise it stops at once with one line naming the command that would. Then it
 * makes sure the machine's shared Redis answers at 127.0.0.1:6379, starting one if not.
 *
 * When everything is there it only looks (five file checks and one PING): no apt call.
 *
 * The decisions take a `Machine`, the seam through which everything is probed and run, so
 * they can be tested without installing anything (`prepare-test-machine.test.ts`).
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, mkdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** A system tool the tests need: where they run it from, and the Debian package that has it. */
export interface Requirement {
  readonly tool: string;
  readonly path: string;
  readonly aptPackage: string;
  /** Install the package without its Recommends (they are services the tests do not use). */
  readonly withoutRecommends?: boolean;
}

/** The tools, at the paths the tests use (the same environment overrides as the testkit). */
export function requirements(env: NodeJS.ProcessEnv = process.env): Requirement[] {
  return [
    {
      tool: "redis-server",
      path: env.REDIS_SERVER_BIN || "/usr/bin/redis-server",
      aptPackage: "redis-server",
    },
    {
      tool: "redis-cli",
      path: env.REDIS_CLI_BIN || "/usr/bin/redis-cli",
      aptPackage: "redis-tools",
    },
    { tool: "chromium", path: "/usr/bin/chromium", aptPackage: "chromium" },
    { tool: "nginx", path: env.NGINX_BIN || "/usr/sbin/nginx", aptPackage: "nginx" },
    { tool: "openssl", path: env.OPENSSL_BIN || "/usr/bin/openssl", aptPackage: "openssl" },
    {
      tool: "promtool",
      path: env.PROMTOOL_BIN || "/usr/bin/promtool",
      aptPackage: "prometheus",
      withoutRecommends: true,
    },
  ];
}

/** Everything the preparation looks at or does to the machine. */
export interface Machine {
  isExecutable(path: string): boolean;
  readonly isRoot: boolean;
  readonly hasAptGet: boolean;
  /** Runs a command to completion (output shown); throws if it fails. */
  run(command: string, args: readonly string[], env?: Record<string, string>): void;
  makeDirectory(path: string): void;
  /** Whether the shared Redis answers PING (`redis-cli -h 127.0.0.1 -p 6379 ping`). */
  redisAnswers(redisCli: string): boolean;
  /** A clock in milliseconds and a pause, for waiting on a started Redis. */
  now(): number;
  pause(ms: number): Promise<void>;
}

/** The machine cannot be prepared from here: `message` is the one line that says what to run. */
export class MachineNotReady extends Error {
  override name = "MachineNotReady";
}

export type InstallPlan =
  | { readonly kind: "ready" }
  | {
      readonly kind: "install";
      readonly packages: readonly string[];
      readonly commands: readonly Command[];
    }
  | { readonly kind: "cannot"; readonly message: string };

export interface Command {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
}

const APT_ENV = { DEBIAN_FRONTEND: "noninteractive" };

export function missingRequirements(
  machine: Pick<Machine, "isExecutable">,
  needed: readonly Requirement[],
): Requirement[] {
  return needed.filter((requirement) => !machine.isExecutable(requirement.path));
}

/** What to do about the missing tools, given who runs this and whether apt-get is here. */
export function planInstall(
  missing: readonly Requirement[],
  machine: Pick<Machine, "isRoot" | "hasAptGet">,
): InstallPlan {
  if (missing.length === 0) return { kind: "ready" };
  const packages = [...new Set(missing.map((requirement) => requirement.aptPackage))];
  const what = missing.map((r) => `${r.tool} (${r.path})`).join(", ");
  // Packages installed without their Recommends (promtool's `prometheus`) get an install of
  // their own, so the rest keep theirs.
  const lean = new Set(missing.filter((r) => r.withoutRecommends).map((r) => r.aptPackage));
  const installs = [
    { names: packages.filter((name) => !lean.has(name)), flags: [] },
    { names: packages.filter((name) => lean.has(name)), flags: ["--no-install-recommends"] },
  ].filter(({ names }) => names.length > 0);
  const installLines = installs.map(({ names, flags }) =>
    ["apt-get install -y", ...flags, ...names].join(" "),
  );
  if (!machine.hasAptGet) {
    return {
      kind: "cannot",
      message:
        `npm test needs ${what}, which this machine lacks, and it has no apt-get to install them: ` +
        `install the equivalent of the Debian packages (\`${installLines.join(" && ")}\`), then run npm test again.`,
    };
  }
  if (!machine.isRoot) {
    const sudo = installLines.map((line) => `sudo DEBIAN_FRONTEND=noninteractive ${line}`);
    return {
      kind: "cannot",
      message:
        `npm test needs ${what}, which this machine lacks; as root it installs them itself, ` +
        `otherwise run: sudo apt-get update && ${sudo.join(" && ")}`,
    };
  }
  return {
    kind: "install",
    packages,
    commands: [
      { command: "apt-get", args: ["update", "-qq"], env: APT_ENV },
      ...installs.map(({ names, flags }) => ({
        command: "apt-get",
        args: ["install", "-y", "-qq", ...flags, ...names],
        env: APT_ENV,
      })),
    ],
  };
}

/** The shared Redis every test may use, started exactly as CI always has. */
export const SHARED_REDIS_DIRS = ["/var/lib/redis", "/var/log/redis"] as const;
export function sharedRedisCommand(redisServer: string): Command {
  return {
    command: redisServer,
    args: [
      "--daemonize",
      "yes",
      "--bind",
      "127.0.0.1",
      "-::1",
      "--port",
      "6379",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      "/var/lib/redis",
      "--logfile",
      "/var/log/redis/ci.log",
    ],
  };
}

/** How long a started Redis gets to answer PING (a loaded 2-core machine is slow to fork). */
export const REDIS_START_TIMEOUT_MS = 10_000;
const REDIS_PING_INTERVAL_MS = 50;

function shellWord(word: string): string {
  return /^[\w./:=+-]+$/.test(word) ? word : `"${word}"`;
}

function commandLine({ command, args }: Command): string {
  return [command, ...args].map(shellWord).join(" ");
}

/**
 * Prepares the machine; throws `MachineNotReady` (one line) when it cannot. `log` gets a line
 * for each thing it does; nothing when there was nothing to do.
 */
export async function prepareTestMachine(
  machine: Machine,
  log: (line: string) => void,
  needed: readonly Requirement[] = requirements(),
): Promise<void> {
  const plan = planInstall(missingRequirements(machine, needed), machine);
  if (plan.kind === "cannot") throw new MachineNotReady(plan.message);
  if (plan.kind === "install") {
    log(`installing ${plan.packages.join(" ")} (apt-get, as root)`);
    for (const step of plan.commands) machine.run(step.command, step.args, step.env);
    const still = missingRequirements(machine, needed);
    if (still.length > 0) {
      throw new MachineNotReady(
        `apt-get installed ${plan.packages.join(" ")} but ${still.map((r) => r.path).join(", ")} ` +
          "is still missing: install it so that it is at that path, then run npm test again.",
      );
    }
  }

  const redisCli = needed.find((r) => r.tool === "redis-cli")?.path ?? "redis-cli";
  if (machine.redisAnswers(redisCli)) return;
  const redisServer = needed.find((r) => r.tool === "redis-server")?.path ?? "redis-server";
  const start = sharedRedisCommand(redisServer);
  const by = `mkdir -p ${SHARED_REDIS_DIRS.join(" ")} && ${commandLine(start)}`;
  log("starting the shared redis-server on 127.0.0.1:6379");
  try {
    for (const dir of SHARED_REDIS_DIRS) machine.makeDirectory(dir);
    machine.run(start.command, start.args);
  } catch (error) {
    throw new MachineNotReady(
      `no Redis answers at 127.0.0.1:6379 and starting one failed (${(error as Error).message.split("\n")[0]}): ` +
        `run ${machine.isRoot ? "" : "as root "}\`${by}\`, then npm test again.`,
    );
  }
  const deadline = machine.now() + REDIS_START_TIMEOUT_MS;
  while (!machine.redisAnswers(redisCli)) {
    if (machine.now() >= deadline) {
      throw new MachineNotReady(
        `redis-server was started but 127.0.0.1:6379 did not answer PING within ` +
          `${REDIS_START_TIMEOUT_MS / 1000} s: see /var/log/redis/ci.log.`,
      );
    }
    await machine.pause(REDIS_PING_INTERVAL_MS);
  }
}

function onPath(name: string): boolean {
  return (process.env.PATH ?? "")
    .split(delimiter)
    .some((dir) => dir !== "" && isExecutable(join(dir, name)));
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** This machine, for real. */
export function realMachine(): Machine {
  return {
    isExecutable,
    isRoot: process.getuid?.() === 0,
    hasAptGet: onPath("apt-get"),
    run(command, args, env) {
      execFileSync(command, args, { stdio: "inherit", env: { ...process.env, ...env } });
    },
    makeDirectory(path) {
      mkdirSync(path, { recursive: true });
    },
    redisAnswers(redisCli) {
      try {
        const reply = execFileSync(redisCli, ["-h", "127.0.0.1", "-p", "6379", "ping"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
          timeout: 5_000,
        });
        return reply.trim() === "PONG";
      } catch {
        return false;
      }
    },
    now: () => performance.now(),
    pause: (ms) => delay(ms),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    await prepareTestMachine(realMachine(), (line) => console.log(`prepare-test-machine: ${line}`));
  } catch (error) {
    if (!(error instanceof MachineNotReady)) throw error;
    console.error(`prepare-test-machine: ${error.message}`);
    process.exitCode = 1;
  }
}
