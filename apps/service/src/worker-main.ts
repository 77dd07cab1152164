/**
 * `npm run worker`: a render worker process for Redis mode (the worker itself is
 * `startRenderWorker` in `@realtime/jobs`). It reads the same environment as the pods, with the
 * same validation — `REDIS_URL`/`REDIS_CLUSTER_NODES`, `REDIS_PREFIX`, `JOBS_*`,
 * `CHANNEL_IDLE_TTL_MS` — so a worker started beside a pod sees the queue and channels the pod
 * uses. On SIGTERM/SIGINT running jobs get `SHUTDOWN_DRAIN_MS` to finish; after that their
 * locks expire and another worker retries them.
 */
import { startRenderWorker } from "@realtime/jobs";
import pino from "pino";
import { type Config, ConfigError, loadConfig } from "./config.ts";

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`realtime worker: ${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}
if (config.redis.mode === "embedded") {
  console.error(
    "realtime worker: set REDIS_URL or REDIS_CLUSTER_NODES (in embedded mode the pod renders jobs itself)",
  );
  process.exit(78);
}

const log = pino({ level: config.logLevel, name: "realtime-worker" });
const worker = await startRenderWorker({ config, log });
log.info(
  { concurrency: config.jobs.concurrency, lockMs: config.jobs.lockMs },
  "realtime worker is ready",
);

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info(`${signal}: finishing running jobs`);
    const deadline = setTimeout(() => process.exit(0), config.shutdown.drainMs);
    void worker.close().then(() => {
      clearTimeout(deadline);
      process.exit(0);
    });
  });
}
