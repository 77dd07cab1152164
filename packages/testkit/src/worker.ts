/**
 * Render workers (`npm run worker`) as real processes, for the jobs tests on Redis; their pods
 * come from {@link withPods} like every other pod.
 */
import { type ChildOptions, startChild, type TestChild } from "./child-process.ts";
import { WORKER_MAIN } from "./entry-points.ts";

export interface WorkerOptions extends ChildOptions {
  /** The script and its arguments (default `WORKER_MAIN`, none), e.g. the container image's. */
  readonly command?: readonly [script: string, ...args: string[]];
}

/** A render worker with `NODE_ENV=test`, `LOG_LEVEL=info` and `env`; resolves once it takes jobs. */
export async function startWorker(
  env: Readonly<Record<string, string>>,
  { command = [WORKER_MAIN], ...options }: WorkerOptions = {},
): Promise<TestChild> {
  const [script, ...args] = command;
  const worker = startChild(script, args, { NODE_ENV: "test", LOG_LEVEL: "info", ...env }, options);
  await worker.waitFor("realtime worker is ready");
  return worker;
}
