/** A pod under attack: our service started as `npm run bench` starts it, with a GC hook for readings. */
import { fileURLToPath } from "node:url";
import { startRealtime, type Target } from "../servers.ts";

const GC_PRELOAD = fileURLToPath(new URL("./gc-on-signal.ts", import.meta.url));

export class AbusePod {
  readonly target: Target;

  private constructor(target: Target) {
    this.target = target;
  }

  static async start(env: Record<string, string>): Promise<AbusePod> {
    const target = await startRealtime({
      // startRealtime turns the per-user cap off for its one-user load; an attack runs with
      // the default unless `env` says otherwise.
      env: { MAX_CONNECTIONS_PER_USER: "64", ...env },
      nodeFlags: ["--expose-gc", "--import", GC_PRELOAD],
    });
    return new AbusePod(target);
  }

  get base(): string {
    return `http://${this.target.host}:${this.target.port}`;
  }

  /** A value of the pod's /metrics (0 when absent). */
  async metric(name: string): Promise<number> {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    return match ? Number(match[1]) : 0;
  }

  /** V8 heap used after a full collection (the pod collects on SIGUSR2). */
  async liveHeap(): Promise<number> {
    process.kill(this.target.pid, "SIGUSR2");
    await new Promise((resolve) => setTimeout(resolve, 300));
    return this.metric("realtime_nodejs_heap_size_used_bytes");
  }

  stop(): Promise<void> {
    return this.target.stop();
  }
}
