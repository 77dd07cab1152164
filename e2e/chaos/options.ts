/** The command line of `npm run chaos` (see {@link HELP}). */
import { parseArgs } from "node:util";
import { CLUSTER_ONLY, FAULT_NAMES, type FaultName, SINGLE_ONLY } from "./faults.ts";

export interface ChaosOptions {
  readonly seed: number;
  /** Seconds of traffic under faults (the run takes longer: start-up and the final checks). */
  readonly duration: number;
  readonly cluster: boolean;
  readonly pods: number;
  readonly subscribers: number;
  readonly rooms: number;
  readonly users: number;
  /** Events per second, over every channel. */
  readonly rate: number;
  readonly faults: readonly FaultName[];
  /** Where to write the run log as JSON (for a closer look at a failure); null: nowhere. */
  readonly dump: string | null;
}

export const HELP = `usage: npm run chaos -- --seed N --duration SECONDS [options]

Runs the real service (N pods on a private redis-server, or a 3-master Redis Cluster with a
replica each) under a fault schedule drawn from the seed while traffic flows, and checks that
every subscriber got every event accepted while it was subscribed exactly once and in order,
or a reset that covers it. Exit 0 only when nothing was lost; the last line is the summary.

  --seed N            seed of every random choice (default 1)
  --duration S        seconds of traffic under faults (default 60)
  --redis-cluster     a 3-master Redis Cluster with a replica each instead of one Redis
  --pods N            service processes (default 3; every third one speaks h2c only)
  --subscribers N     streams (default 16): single- and multi-channel, HTTP/1.1 and h2
  --rooms N           channel:<id> rooms (default 6; users' own channels come on top)
  --users N           signed-in users the streams and chat belong to (default 4)
  --rate N            events per second over all channels (default 100)
  --faults=a,b,…      the faults to draw from (default: all that apply to the mode):
                      ${FAULT_NAMES.join(", ")}
                      (${SINGLE_ONLY.join(", ")}: single Redis only; ${CLUSTER_ONLY.join(", ")}: Cluster only;
                      --faults=none: traffic without faults)
  --dump FILE         write the run log (events, every stream's deliveries and resets,
                      connects, faults) to FILE as JSON, and what each pod logged to
                      FILE.pods.log
  -h, --help          this text

Reproduce a failed run with the same seed, mode and options: the schedule and every choice
come from the seed (the machine's timing does not).`;

export class UsageError extends Error {}

function integer(name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer in ${min}..${max} (got ${value})`);
  }
  return n;
}

/** Parses the arguments; null for --help. Throws {@link UsageError}. */
export function parseOptions(argv: readonly string[]): ChaosOptions | null {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        seed: { type: "string", default: "1" },
        duration: { type: "string", default: "60" },
        "redis-cluster": { type: "boolean", default: false },
        pods: { type: "string", default: "3" },
        subscribers: { type: "string", default: "16" },
        rooms: { type: "string", default: "6" },
        users: { type: "string", default: "4" },
        rate: { type: "string", default: "100" },
        faults: { type: "string" },
        dump: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return null;
  const cluster = values["redis-cluster"] === true;
  const applicable = FAULT_NAMES.filter((name) =>
    cluster ? !SINGLE_ONLY.includes(name) : !CLUSTER_ONLY.includes(name),
  );
  let faults: FaultName[] = applicable;
  if (typeof values.faults === "string") {
    const names = values.faults === "none" ? [] : values.faults.split(",").filter(Boolean);
    for (const name of names) {
      if (!applicable.includes(name as FaultName)) {
        throw new UsageError(
          `--faults: "${name}" is not one of ${applicable.join(", ")}${cluster ? " (with --redis-cluster)" : ""}`,
        );
      }
    }
    faults = names as FaultName[];
  }
  return {
    seed: integer("seed", values.seed as string, 0, 2 ** 31 - 1),
    duration: integer("duration", values.duration as string, 5, 86_400),
    cluster,
    pods: integer("pods", values.pods as string, 2, 12),
    subscribers: integer("subscribers", values.subscribers as string, 1, 500),
    rooms: integer("rooms", values.rooms as string, 1, 100),
    users: integer("users", values.users as string, 1, 100),
    rate: integer("rate", values.rate as string, 1, 5_000),
    faults,
    dump: typeof values.dump === "string" ? values.dump : null,
  };
}
