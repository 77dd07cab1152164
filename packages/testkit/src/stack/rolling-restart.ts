import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Pod } from "../pods.ts";

/** How long a pod may take from SIGTERM to exit before it is killed: its drain plus this. */
const EXIT_MARGIN_MS = 10_000;

export interface RollingRestartOptions {
  /** How long a restarted pod must stay ready before the next one stops. Default 2500. */
  readonly minReadyMs?: number;
  /** The pods' `SHUTDOWN_DRAIN_MS` (default: read from each pod's env, else 5000). */
  readonly drainMs?: number;
  /** Progress lines. */
  readonly log?: (line: string) => void;
  /** Called right before a pod gets SIGTERM, and once it is back and stayed ready. */
  readonly onStopping?: (pod: Pod, index: number) => void;
  readonly onReady?: (pod: Pod, index: number) => void;
}

export interface PodRestart {
  readonly pod: string;
  readonly oldPid: number;
  readonly newPid: number;
  /** When SIGTERM was sent (`performance.now()` of this process). */
  readonly signalledAt: number;
  /** SIGTERM → first `/readyz` that was not 200, in ms. */
  readonly unreadyAfterMs: number;
  /**
   * What that first `/readyz` answered: 503 from a pod that is draining, 0 when nothing
   * answered any more (the pod was gone before it was seen unready), NaN if never seen.
   */
  readonly unreadyStatus: number;
  /** SIGTERM → process exit: the drain, in ms. */
  readonly drainMs: number;
  /** When the old process exited (`performance.now()`). */
  readonly exitedAt: number;
  readonly exitCode: number | null;
  /** Whether it had to be SIGKILLed after its drain budget. */
  readonly killed: boolean;
  /** Exit → the new process answered `/readyz` 200, in ms. */
  readonly startMs: number;
  /** SIGTERM → ready again after `minReadyMs`: the step, in ms. */
  readonly stepMs: number;
}

export interface RollingRestartReport {
  readonly pods: readonly PodRestart[];
  readonly totalMs: number;
}

/** Restarts `pods` one at a time (see the file comment). Rejects if a pod does not come back. */
export async function rollingRestart(
  pods: readonly Pod[],
  options: RollingRestartOptions = {},
): Promise<RollingRestartReport> {
  const minReadyMs = options.minReadyMs ?? 2_500;
  const log = options.log ?? (() => {});
  const started = performance.now();
  const results: PodRestart[] = [];
  for (const [index, pod] of pods.entries()) {
    const name = `pod${index + 1}`;
    const drainBudget =
      (options.drainMs ?? Number(pod.env.SHUTDOWN_DRAIN_MS ?? 5_000)) + EXIT_MARGIN_MS;
    options.onStopping?.(pod, index);
    const oldPid = pod.pid;
    const signalledAt = performance.now();
    const exit = pod.kill("SIGTERM");
    let exitedAt = 0;
    void exit.then(() => {
      exitedAt = performance.now();
    });
    // Readiness must turn false at once, before the first stream closes.
    let unreadyAfterMs = Number.NaN;
    let unreadyStatus = Number.NaN;
    while (exitedAt === 0 && performance.now() - signalledAt < drainBudget) {
      const status = await pod.readyz();
      if (status !== 200) {
        unreadyAfterMs = performance.now() - signalledAt;
        unreadyStatus = status;
        break;
      }
    }
    log(`${name} (pid ${oldPid}): SIGTERM; /readyz 503 after ${unreadyAfterMs.toFixed(0)} ms`);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      void pod.kill("SIGKILL");
    }, drainBudget);
    const { code } = await exit;
    clearTimeout(timer);
    exitedAt ||= performance.now();
    const drainMs = exitedAt - signalledAt;
    log(
      `${name}: drained and exited (${killed ? "SIGKILL after the drain budget" : `code ${code}`}) ${drainMs.toFixed(0)} ms after SIGTERM`,
    );
    // What it said while it did not stop: its slow shutdown steps are logged at warn.
    if (killed) log(`${name} output before the SIGKILL:\n${pod.output().slice(-4000)}`);
    await pod.restart();
    const startMs = performance.now() - exitedAt;
    log(`${name}: started again (pid ${pod.pid}), /readyz 200 after ${startMs.toFixed(0)} ms`);
    await stayReady(pod, minReadyMs, name);
    options.onReady?.(pod, index);
    const stepMs = performance.now() - signalledAt;
    log(`${name}: stayed ready ${minReadyMs} ms; step took ${stepMs.toFixed(0)} ms`);
    results.push({
      pod: name,
      oldPid,
      newPid: pod.pid,
      signalledAt,
      unreadyAfterMs,
      unreadyStatus,
      drainMs,
      exitedAt,
      exitCode: code,
      killed,
      startMs,
      stepMs,
    });
  }
  return { pods: results, totalMs: performance.now() - started };
}

/** Polls `/readyz` every 100 ms for `ms`; rejects if it is ever not 200. */
async function stayReady(pod: Pod, ms: number, name: string): Promise<void> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const status = await pod.readyz();
    if (status !== 200) throw new Error(`${name} turned unready (${status}) after its restart`);
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(1, Math.min(100, until - performance.now()))),
    );
  }
}

/** The report as a few lines (also what `npm run stack:restart` prints last). */
export function formatReport(report: RollingRestartReport): string {
  const lines = report.pods.map(
    (p) =>
      `  ${p.pod}: unready after ${p.unreadyAfterMs.toFixed(0)} ms, drain ${p.drainMs.toFixed(0)} ms` +
      `${p.killed ? " (killed)" : ""}, start ${p.startMs.toFixed(0)} ms, step ${p.stepMs.toFixed(0)} ms`,
  );
  return [
    `rolling restart of ${report.pods.length} pods in ${(report.totalMs / 1000).toFixed(1)} s`,
    ...lines,
  ].join("\n");
}

/** Where `npm run stack` keeps its state, certificate, configs and logs (`STACK_RUN_DIR`). */
export function defaultRunDir(): string {
  return process.env.STACK_RUN_DIR || join(tmpdir(), "realtime-stack");
}
