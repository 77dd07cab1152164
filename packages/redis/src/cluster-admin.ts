/**
 * Direct access to the nodes of a test cluster, for assertions a cluster client would route
 * elsewhere: PUBSUB SHARDNUMSUB must be asked of the slot owner, CLIENT KILL of every node.
 */
import { Redis } from "ioredis";

export class ClusterAdmin {
  readonly #clients: Map<number, Redis>;

  constructor(nodes: readonly { host: string; port: number }[]) {
    // One client per port: a node listed twice must not leave an unclosed second client.
    this.#clients = new Map();
    for (const { host, port } of nodes) {
      if (this.#clients.has(port)) continue;
      const client = new Redis({ host, port });
      // A node a test killed on purpose: its reconnect errors are expected, not news.
      client.on("error", () => {});
      this.#clients.set(port, client);
    }
  }

  /** `CLUSTER KEYSLOT key`, as Redis computes it. */
  async keySlot(key: string): Promise<number> {
    return Number(await this.#any().call("CLUSTER", "KEYSLOT", key));
  }

  /** The client of the master that owns `key`'s slot (per CLUSTER SLOTS). */
  async owner(key: string): Promise<Redis> {
    const slot = await this.keySlot(key);
    const ranges = (await this.#any().call("CLUSTER", "SLOTS")) as [
      number,
      number,
      [string, number],
    ][];
    const range = ranges.find(([start, end]) => slot >= start && slot <= end);
    const client = range && this.#clients.get(Number(range[2][1]));
    if (!client) throw new Error(`no node owns slot ${slot}`);
    return client;
  }

  /** Subscribers of a shard channel, asked of the node that owns it. */
  async shardNumSub(channel: string): Promise<number> {
    const reply = await (await this.owner(channel)).call("PUBSUB", "SHARDNUMSUB", channel);
    return Array.isArray(reply) ? Number(reply[1]) : Number.NaN;
  }

  /** Sum of SHARDNUMSUB of `channel` over every node (only the owner should count any). */
  async shardNumSubEverywhere(channel: string): Promise<number[]> {
    const replies = await Promise.all(
      [...this.#clients.values()].map((c) => c.call("PUBSUB", "SHARDNUMSUB", channel)),
    );
    return replies.map((reply) => (Array.isArray(reply) ? Number(reply[1]) : Number.NaN));
  }

  /** `CLIENT KILL TYPE pubsub` on every node; returns how many connections were killed. */
  async killPubSubClients(): Promise<number> {
    const killed = await Promise.all(
      [...this.#clients.values()].map((c) => c.call("CLIENT", "KILL", "TYPE", "pubsub")),
    );
    return killed.reduce<number>((sum, n) => sum + Number(n), 0);
  }

  async close(): Promise<void> {
    for (const client of this.#clients.values()) client.disconnect();
  }

  #any(): Redis {
    const first = this.#clients.values().next().value;
    if (!first) throw new Error("no cluster node");
    return first;
  }
}
