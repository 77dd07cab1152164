/**
 * `npm run bench:scale`: issue 20's scale scenario (`./run.ts`), 100,000 concurrent SSE streams
 * over 6 pods, on one Redis and then on a 3-master Redis Cluster. Pods and Redis run pinned to
 * core 0, this process and the 12 load-generator workers to core 1 (as `npm run bench`).
 *
 *   npm run bench:scale                        both topologies, full size (~5 min)
 *   npm run bench:scale -- --quick             3 pods, 3,000 streams, 30 rooms (~1 min)
 *   npm run bench:scale -- --topology=cluster  one of redis, cluster
 *   npm run bench:scale -- --runs=3            repeat; every run's figures are printed
 *
 * Prints each run's figures and writes them to bench/results/scale-latest.json (and a dated
 * copy).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { fileURLToPath } from "node:url";
import type { Ctx } from "../context.ts";
import { elapsedLog, Generator, pinToGeneratorCore } from "../generator.ts";
import { FULL, fleetFor, QUICK } from "./plan.ts";
import { scaleRun, type Topology } from "./run.ts";

const RESULTS = fileURLToPath(new URL("../../results/", import.meta.url));

function arg(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

async function main(): Promise<void> {
  const quick = process.argv.includes("--quick");
  const size = quick ? QUICK : FULL;
  const runs = Math.max(1, Math.min(5, Number(arg("runs") ?? 1)));
  const topologies = (arg("topology")?.split(",") ?? ["redis", "cluster"]) as Topology[];
  for (const t of topologies) {
    if (t !== "redis" && t !== "cluster") throw new Error(`unknown topology ${t}`);
  }
  const started = Date.now();
  const log = elapsedLog(started);
  pinToGeneratorCore(log);

  const gen = Generator.start(size.workers);
  const ctx: Ctx = {
    quick,
    servers: ["realtime"],
    gen,
    log,
    record: () => {},
    profileDir: undefined,
  };
  process.once("SIGINT", () => {
    void gen.stop().finally(() => process.exit(130));
  });
  const out: Record<string, number | string | null>[] = [];
  log(
    `scale: ${size.streams} streams over ${size.pods} pods (MAX_CONNECTIONS ${size.maxConnections}), ${size.rooms} rooms × ${size.streams / size.rooms} + one broadcast channel on every stream; ${size.workers} generator workers; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  try {
    for (let run = 1; run <= runs; run++) {
      for (const topology of topologies) {
        const load = loadavg()[0] as number;
        const t0 = Date.now();
        const values = await scaleRun(ctx, size, topology);
        if (!values) continue;
        const row = {
          run,
          ...values,
          loadBefore: Math.round(load * 100) / 100,
          loadAfter: Math.round((loadavg()[0] as number) * 100) / 100,
          runSeconds: Math.round((Date.now() - t0) / 1000),
        };
        out.push(row);
        log(`  run ${run}, ${topology}: ${JSON.stringify(row)}`);
      }
    }
  } finally {
    await gen.stop();
  }
  // On paper: the fleet for 1M and 10M streams from this run's per-pod figures (medians).
  const median = (key: string) => {
    const v = out
      .map((r) => r[key])
      .filter((x): x is number => typeof x === "number")
      .sort((x, y) => x - y);
    return v.length > 0 ? (v[Math.floor(v.length / 2)] as number) : null;
  };
  const rssKb = median("rssKbPerStream");
  const baseMb = median("fleetRssBeforeMb");
  const usPerDelivery = median("burstPodsUsPerDelivery");
  const wire = median("burstBytesPerDelivery");
  if (rssKb !== null && baseMb !== null && usPerDelivery !== null && wire !== null) {
    for (const streams of [1_000_000, 10_000_000]) {
      const fleet = fleetFor(streams, {
        streamsPerPod: size.maxConnections,
        rssPerStreamBytes: rssKb * 1024,
        podBaseBytes: (baseMb * 1e6) / size.pods,
        eventWireBytes: wire,
        deliveriesPerCoreSecond: 1e6 / usPerDelivery,
      });
      log(`  on paper, ${streams} streams: ${JSON.stringify(fleet)}`);
    }
  }
  const date = new Date().toISOString();
  mkdirSync(RESULTS, { recursive: true });
  const json = JSON.stringify(
    {
      date,
      quick,
      size,
      machine: { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, kernel: release() },
      runs: out,
    },
    null,
    2,
  );
  writeFileSync(`${RESULTS}scale-${date.replace(/[:.]/g, "-")}.json`, json);
  writeFileSync(`${RESULTS}scale-latest.json`, json);
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; ${RESULTS}scale-latest.json`);
  if (out.length < runs * topologies.length) process.exitCode = 1;
}

await main();
