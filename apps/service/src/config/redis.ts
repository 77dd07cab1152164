/** `config.redis`: whether and how events fan out through Redis. */
import { type EnvReader, show } from "./env.ts";

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisConfig {
  /**
   * How events fan out. Derived: `"cluster"` when `REDIS_CLUSTER_NODES` is set, `"standalone"`
   * when only `REDIS_URL` is set, `"embedded"` (in-process broker, single pod) otherwise.
   */
  readonly mode: "embedded" | "standalone" | "cluster";
  /** `redis://` or `rediss://` URL (`REDIS_URL`). Default null. In cluster mode it may carry credentials. */
  readonly url: string | null;
  /** Key and channel prefix (`REDIS_PREFIX`). Default `"realtime"`. */
  readonly prefix: string;
  /** Cluster seed nodes (`REDIS_CLUSTER_NODES`, comma-separated `host:port`). Default empty. */
  readonly clusterNodes: readonly RedisNode[];
  /**
   * Replicas that must hold a publish before it is acknowledged (`REDIS_WAIT_REPLICAS`, Redis
   * `WAIT`). Default 0. Set 1 on a Cluster (or a replicated Redis) with a replica per master,
   * so a failover cannot drop an acknowledged event (see operations.md).
   */
  readonly waitReplicas: number;
  /** How long a publish waits for them, in ms (`REDIS_WAIT_TIMEOUT_MS`, 1–1500). Default 500. */
  readonly waitTimeoutMs: number;
}

/** Keys and channels embed the prefix, so keep it to characters that need no escaping. */
const REDIS_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function readRedis(r: EnvReader): RedisConfig {
  const url = r.raw("REDIS_URL") ?? null;
  if (url !== null) {
    let protocol = "";
    try {
      protocol = new URL(url).protocol;
    } catch {
      // reported below
    }
    if (protocol !== "redis:" && protocol !== "rediss:") {
      // The URL may carry a password: name the problem, not the value.
      r.problems.push("REDIS_URL must be a redis:// or rediss:// URL");
    }
  }
  const prefix = r.string("REDIS_PREFIX", "realtime");
  if (!REDIS_PREFIX_PATTERN.test(prefix)) {
    r.problems.push(`REDIS_PREFIX must match ${REDIS_PREFIX_PATTERN.source}, got ${show(prefix)}`);
  }
  const clusterNodes = readClusterNodes(r);
  const mode = clusterNodes.length > 0 ? "cluster" : url !== null ? "standalone" : "embedded";
  // Below the broker's 2 s command timeout, which bounds the pipeline WAIT rides in.
  const waitReplicas = r.int("REDIS_WAIT_REPLICAS", 0, 0, 16);
  const waitTimeoutMs = r.int("REDIS_WAIT_TIMEOUT_MS", 500, 1, 1500);
  return { mode, url, prefix, clusterNodes, waitReplicas, waitTimeoutMs };
}

function readClusterNodes(r: EnvReader): RedisNode[] {
  const value = r.raw("REDIS_CLUSTER_NODES");
  if (value === undefined) return [];
  const nodes: RedisNode[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    // host:port, with the port after the last colon so bracketed IPv6 hosts work too.
    const colon = item.lastIndexOf(":");
    const host = item.slice(0, colon);
    const portText = item.slice(colon + 1);
    const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
    if (colon <= 0 || host.length === 0 || port < 1 || port > 65535) {
      r.problems.push(`REDIS_CLUSTER_NODES must be a comma list of host:port, got ${show(item)}`);
      continue;
    }
    nodes.push({ host: host.replace(/^\[(.*)\]$/, "$1"), port });
  }
  return nodes;
}
