/**
 * Render workers (`npm run worker`) as real processes, for the jobs tests on Redis; their pods
 * come from {@link withPods} like every other pod.
 */
import { startChild, type TestChild } from "./child-process.ts";
import { WORKER_MAIN } from "./entry-points.ts";

/** A render worker with `NODE_ENV=test`, `LOG_LEVEL=info` and `env`; resolves once it takes jobs. */
export async function startWorker(env: Readonly<Record<string, string>>): Promise<TestChild> {
  const worker = startChild(WORKER_MAIN, [], { NODE_ENV: "test", LOG_LEVEL: "info", ...env });
  await worker.waitFor("realtime worker is ready");
  return worker;
}
