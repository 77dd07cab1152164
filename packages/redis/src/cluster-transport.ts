/**
 * Redis Cluster with sharded pub/sub: SPUBLISH from the publish script, SSUBSCRIBE on the
 * master that owns the channel's slot.
 *
 * The subscriber side is an ioredis `Cluster` with `shardedSubscribers: true`, which keeps one
 * subscriber connection per master, sends each SSUBSCRIBE to the slot owner (from its slot
 * cache) and, when one of those connections drops, replaces it and re-issues the SSUBSCRIBEs
 * of its slots (verified against Redis 7.0 in `redis-broker-cluster.int.test.ts`). ioredis
 * does not await those re-SSUBSCRIBEs, so the broker confirms them itself, then probes every
 * master through a probe channel that hashes to a slot that master owns.
 */
import type { Cluster } from "ioredis";
import type { ScriptClient } from "./publish-script.ts";
import {
  chunks,
  closeClient,
  type PubSubTransport,
  type TransportEvents,
  waitForEvent,
} from "./pubsub-transport.ts";
import { createRedisClient } from "./redis-client.ts";
import { keySlot, probeChannel } from "./redis-keys.ts";
import { asTimeout } from "./timeout.ts";

export interface ClusterTransportOptions {
  readonly nodes: readonly { host: string; port: number }[];
  readonly prefix: string;
  readonly podId: string;
  readonly commandTimeoutMs: number;
}

/** Probe channel numbers tried per master before giving up (each hit has p ≈ 1/masters). */
const MAX_PROBE_SEARCH = 10_000;

export class ClusterTransport implements PubSubTransport {
  readonly sharded = true;
  readonly #cmd: Cluster;
  readonly #sub: Cluster;
  readonly #options: ClusterTransportOptions;

  constructor(options: ClusterTransportOptions, events: TransportEvents) {
    this.#options = options;
    const { nodes, podId, commandTimeoutMs } = options;
    // As in standalone mode: no queueing, no resending of a publish whose reply was lost.
    this.#cmd = createRedisClient(
      { nodes },
      { role: "commands", name: `realtime-cmd-${podId}`, commandTimeoutMs },
    );
    // Sharded: one subscriber connection per master, SSUBSCRIBEs sent to the slot owner.
    this.#sub = createRedisClient({ nodes }, { role: "subscriber", name: `realtime-sub-${podId}` });
    this.#sub.on("smessage", (channel: string, text: string) => events.message(channel, text));
    // A sharded subscriber connection that ends is reported as "-node"; ioredis then refreshes
    // the slots, replaces it and emits "subscribersReady" once the replacement connected.
    this.#sub.on("-node", () => events.down("subscriber node connection lost"));
    this.#sub.on("subscribersReady", () => events.up());
    for (const [name, client] of [
      ["subscriber", this.#sub],
      ["command", this.#cmd],
    ] as const) {
      client.on("ready", () => events.up());
      client.on("close", () => events.down(`${name} cluster connection closed`));
      client.on("error", (error: Error) => events.error(error));
      client.on("node error", (error: Error) => events.error(error));
    }
  }

  get commands(): ScriptClient {
    return this.#cmd;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(
      bySlot(channels).flatMap((group) => chunks(group).map((c) => this.#sub.ssubscribe(...c))),
    );
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(
      bySlot(channels).flatMap((group) => chunks(group).map((c) => this.#sub.sunsubscribe(...c))),
    );
  }

  async publishRaw(channel: string, message: string): Promise<void> {
    try {
      await this.#cmd.spublish(channel, message);
    } catch (error) {
      throw asTimeout(error); // the broker counts the probe's timeouts
    }
  }

  /** One probe channel per master in the subscriber's slot cache (empty before it has one). */
  probeChannels(): string[] {
    const owners = this.#sub.slots;
    const masters = new Set<string>();
    for (const nodes of owners) if (nodes?.[0]) masters.add(nodes[0]);
    const probes: string[] = [];
    for (const master of masters) {
      for (let n = 0; n < MAX_PROBE_SEARCH; n++) {
        const channel = probeChannel(this.#options.prefix, this.#options.podId, n);
        if (owners[keySlot(channel)]?.[0] === master) {
          probes.push(channel);
          break;
        }
      }
    }
    return probes;
  }

  connected(): boolean {
    return this.#cmd.status === "ready" && this.#sub.status === "ready";
  }

  whenCommandsReady(timeoutMs: number): Promise<void> {
    const cmd = this.#cmd;
    return waitForEvent(cmd, "ready", () => cmd.status === "ready", timeoutMs, "redis cluster");
  }

  resetConnections(): void {
    this.#sub.disconnect(true);
    this.#cmd.disconnect(true);
  }

  async close(): Promise<void> {
    await Promise.all([closeClient(this.#cmd), closeClient(this.#sub)]);
  }
}

/** SSUBSCRIBE takes channels of one slot only. */
function bySlot(channels: readonly string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const channel of channels) {
    const slot = keySlot(channel);
    const group = groups.get(slot);
    if (group) group.push(channel);
    else groups.set(slot, [channel]);
  }
  return [...groups.values()];
}
