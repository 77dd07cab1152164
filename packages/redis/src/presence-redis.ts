/**
 * The Redis presence store's connection: the client (standalone or Cluster), its readiness,
 * script calls, and the retries that make a deciding call safe to lose the reply of.
 */
import type { ChannelName } from "@realtime/protocol";
import { Cluster, type Redis } from "ioredis";
import { watchConnection } from "./connection-watchdog.ts";
import type { Script } from "./lua.ts";
import { replyRows, runScript } from "./presence-script.ts";
import { closeClient, waitForEvent } from "./pubsub-transport.ts";
import { createRedisClient, redisTarget } from "./redis-client.ts";
import type { ReplicaWait } from "./replication.ts";

export interface PresenceRedisOptions {
  readonly url: string | undefined;
  readonly clusterNodes: readonly { host: string; port: number }[] | undefined;
  readonly podId: string;
  readonly commandTimeoutMs: number;
  readonly wait: ReplicaWait | undefined;
  readonly logger: { warn(message: string): void };
  /** The connection closed: Redis may lose what was written before it comes back. */
  readonly onClose: () => void;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class PresenceRedis {
  readonly client: Redis | Cluster;
  readonly #podId: string;
  readonly #commandTimeoutMs: number;
  readonly #wait: ReplicaWait | undefined;
  readonly #logger: { warn(message: string): void };
  readonly #unwatch: () => void;
  #calls = 0;
  #closed = false;
  #errorLogged = false;

  constructor(options: PresenceRedisOptions) {
    this.#podId = options.podId;
    this.#commandTimeoutMs = options.commandTimeoutMs;
    this.#wait = options.wait;
    this.#logger = options.logger;
    // Nothing is queued while disconnected: calls fail fast and are retried by this store
    // (scripts are replay-safe by call id); a resend of a command from a dead connection
    // would run it late, after newer ones.
    this.client = createRedisClient(redisTarget(options.url, options.clusterNodes), {
      role: "commands",
      name: `realtime-presence-${this.#podId}`,
      commandTimeoutMs: this.#commandTimeoutMs,
    });
    this.client.on("error", (error: Error) => this.#onError(error));
    // A partitioned connection would time every heartbeat out until the TTL reaps this pod.
    this.#unwatch = watchConnection(this.client, {
      onStale: (reason) => this.#logger.warn(`presence: ${reason}`),
    });
    this.client.on("ready", () => {
      this.#errorLogged = false;
    });
    this.client.on("close", () => options.onClose());
  }

  /** A new call id (`<podId>.<n>`): a retry of a call reuses its id (see `replayable`). */
  callId(): string {
    return `${this.#podId}.${++this.#calls}`;
  }

  /** Runs `script` once; with `wait`, only once the configured replicas hold it. */
  async run(
    script: Script,
    keys: readonly string[],
    args: readonly (string | number)[],
    wait = false,
  ): Promise<unknown> {
    await this.ready();
    return runScript(this.client, script, keys, args, wait ? this.#wait : undefined);
  }

  /** Runs a deciding script until Redis answers; retries reuse the call id (see the scripts). */
  decide(
    script: Script,
    replyKey: string,
    [scriptKeys, args]: [string[], (string | number)[]],
  ): Promise<string[][]> {
    return this.retrying("presence script", async () => {
      await this.ready();
      return replyRows(
        await runScript(this.client, script, [...scriptKeys, replyKey], args, this.#wait),
      );
    });
  }

  async retrying<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let failures = 0; ; failures++) {
      if (this.#closed) throw new Error("presence store is closed");
      try {
        return await attempt();
      } catch (error) {
        if (this.#closed) throw error;
        if (failures === 0)
          this.#logger.warn(`presence: ${what} failed, retrying: ${errorMessage(error)}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** failures, 2_000)));
      }
    }
  }

  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("presence store is closed"));
    const client = this.client;
    return waitForEvent(
      client,
      "ready",
      () => client.status === "ready",
      this.#commandTimeoutMs,
      "redis presence",
    );
  }

  /** Channels where `pod` has a connection hash, found by SCAN on every master. */
  async channelsWithEntries(prefix: string, pod: string): Promise<ChannelName[]> {
    const head = `${prefix}:presence-pod:`;
    const tail = `:${pod}`;
    const pattern = `${head.replace(/[*?[\]\\]/g, "\\$&")}*${tail}`;
    const nodes = this.client instanceof Cluster ? this.client.nodes("master") : [this.client];
    const channels = new Set<ChannelName>();
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1_000);
        cursor = next;
        for (const key of keys) {
          if (!key.startsWith(`${head}{`) || !key.endsWith(`}${tail}`)) continue;
          channels.add(key.slice(head.length + 1, -tail.length - 1) as ChannelName);
        }
      } while (cursor !== "0");
    }
    return [...channels];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch();
    await closeClient(this.client);
  }

  #onError(error: Error): void {
    if (this.#errorLogged || this.#closed) return;
    this.#errorLogged = true;
    this.#logger.warn(`presence: redis connection error: ${error.message}`);
  }
}
