/** `config.shutdown`: the drain on SIGTERM. */
import type { EnvReader } from "./env.ts";

export interface ShutdownConfig {
  /** How long to let streams and requests finish on SIGTERM, in ms (`SHUTDOWN_DRAIN_MS`). Default 5000. */
  readonly drainMs: number;
}

export function readShutdown(r: EnvReader): ShutdownConfig {
  return { drainMs: r.int("SHUTDOWN_DRAIN_MS", 5000) };
}
