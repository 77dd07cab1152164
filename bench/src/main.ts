/**
 * `npm run bench`: our service side by side with Nchan, a plain node:http hub and better-sse,
 * in one invocation. Servers run pinned to core 0, this process and the load generator's
 * workers to core 1. Prints a Markdown table with ratios and writes JSON to bench/results/.
 *
 *   npm run bench                         everything (< 15 min on 2 cores)
 *   npm run bench -- --quick              small sizes, to check the harness (~2 min)
 *   npm run bench -- --only=steady,idle   some scenarios (reconnect-storm: see scenarios/storm.ts)
 *   npm run bench -- --servers=realtime,nchan
 *   npm run bench -- --runs=3             repeat, report medians
 *   npm run bench -- --no-profile         skip the --cpu-prof run of our fan-out
 *
 * Our pods start with the service's shipped NODE_OPTIONS; `BENCH_NODE_OPTIONS` replaces them
 * (empty: V8's defaults). See `podNodeOptions` in servers.ts.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { fileURLToPath } from "node:url";
import type { Ctx, Measurement } from "./context.ts";
import { elapsedLog, Generator, pinToGeneratorCore } from "./generator.ts";
import { ensureNchan, NGINX } from "./nchan.ts";
import { summarise, summaryText } from "./profile.ts";
import { historyTable, table } from "./report.ts";
import { capacity } from "./scenarios/capacity.ts";
import { crossPodBurst, fanout, h2Fanout, profileFanout } from "./scenarios/fanout.ts";
import { idle } from "./scenarios/idle.ts";
import { historyCost, profilePublish, publishThroughput } from "./scenarios/publish.ts";
import { crossPod, h2Steady, steady, steadyChat } from "./scenarios/steady.ts";
import { reconnectStorm } from "./scenarios/storm.ts";
import { podNodeOptions, type ServerKind } from "./servers.ts";

const RESULTS = fileURLToPath(new URL("../results/", import.meta.url));
const ALL_SERVERS: ServerKind[] = ["realtime", "nchan", "node", "better-sse"];

const SCENARIOS: Record<string, (ctx: Ctx) => Promise<unknown>> = {
  idle,
  steady,
  "steady-chat": steadyChat,
  "cross-pod": crossPod,
  fanout: (ctx) => fanout(ctx),
  publish: publishThroughput,
  history: historyCost,
  h2: async (ctx) => {
    await h2Steady(ctx);
    await h2Fanout(ctx);
  },
  "cross-pod-burst": crossPodBurst,
  capacity,
  "reconnect-storm": reconnectStorm,
  profile: async (ctx) => {
    const run = await profileFanout(ctx);
    profileTitle = "fan-out";
    if (run) profileText = summaryText(summarise(run.path, run.window, 30));
  },
  // Not part of the default set: our publish path under --cpu-prof.
  "profile-publish": async (ctx) => {
    profileTitle = "publish (memory)";
    profileText = await profilePublish(ctx, RESULTS);
  },
};

let profileText = "";
let profileTitle = "fan-out";
/** Scenarios run only when named in `--only`. */
const OPT_IN = new Set(["profile-publish", "steady-chat"]);

function arg(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const runs = Math.max(1, Math.min(5, Number(arg("runs") ?? 1)));
  const only =
    arg("only")?.split(",") ??
    Object.keys(SCENARIOS).filter(
      (s) => !OPT_IN.has(s) && (s !== "profile" || !process.argv.includes("--no-profile")),
    );
  const profile = only.includes("profile");
  let servers = (arg("servers")?.split(",") as ServerKind[] | undefined) ?? ALL_SERVERS;
  const started = Date.now();
  const log = elapsedLog(started);

  // This process and everything it forks (the generator's workers) run on the generator core.
  pinToGeneratorCore(log);

  if (servers.includes("nchan") && !ensureNchan(log)) {
    log("Nchan is not available: running without it");
    servers = servers.filter((s) => s !== "nchan");
  }
  mkdirSync(RESULTS, { recursive: true });
  const measurements: Measurement[] = [];
  const gen = Generator.start(3);
  const ctx: Ctx = {
    quick,
    servers,
    gen,
    log,
    record: (m) => measurements.push(m),
    profileDir: profile ? RESULTS : undefined,
  };
  const stop = async () => {
    await gen.stop();
    process.exit(130);
  };
  process.once("SIGINT", () => void stop());
  try {
    for (let run = 1; run <= runs; run++) {
      if (runs > 1) log(`— run ${run} of ${runs}`);
      for (const name of only) {
        if ((name === "profile" || name === "profile-publish") && run > 1) continue;
        const scenario = SCENARIOS[name];
        if (!scenario)
          throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(", ")}`);
        const t0 = Date.now();
        await scenario(ctx);
        log(`  (${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
    }
  } finally {
    await gen.stop();
  }

  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    nginx: versionOf(NGINX, ["-v"]),
    fdLimit: Number(execFileSync("/bin/sh", ["-c", "ulimit -Hn"]).toString().trim()),
  };
  const date = new Date().toISOString();
  const podOptions = podNodeOptions();
  const text = [
    `# realtime bench — ${date}${quick ? " (QUICK sizes: not comparable)" : ""}`,
    "",
    `machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, Node ${machine.node}, ${machine.nginx}, fd limit ${machine.fdLimit}`,
    `servers on core 0, load generator on core 1; ${runs} run(s), medians; ratios are realtime ÷ peer (↓ lower is better, ↑ higher is better)`,
    `our pods: NODE_OPTIONS=${JSON.stringify(podOptions)}`,
    "",
    table(measurements),
    "",
    historyTable(measurements),
    "",
    profileText ? `## CPU profile: realtime ${profileTitle}\n\n${profileText}` : "",
  ].join("\n");
  console.log(`\n${text}`);
  const stamp = date.replace(/[:.]/g, "-");
  const json = JSON.stringify(
    { date, quick, runs, machine, servers, podNodeOptions: podOptions, measurements },
    null,
    2,
  );
  writeFileSync(`${RESULTS}bench-${stamp}.json`, json);
  writeFileSync(`${RESULTS}latest.json`, json);
  writeFileSync(`${RESULTS}latest.md`, `${text}\n`);
  log(
    `done in ${((Date.now() - started) / 1000).toFixed(0)} s; results in ${RESULTS}latest.{json,md}`,
  );
}

function versionOf(bin: string, args: string[]): string {
  const out = spawnSync(bin, args, { encoding: "utf8", timeout: 10_000 });
  return `${out.stdout ?? ""}${out.stderr ?? ""}`.trim().split("\n")[0] || "n/a";
}

await main();
