/**
 * Every ioredis client of the service, the jobs and the worker is made here, by
 * {@link createRedisClient}: a target (one URL, or Cluster seed nodes) and a profile that names
 * the client's role. The role decides the options; nothing else builds a client with options of
 * its own.
 *
 * | profile      | used by                                       | offline queue | command timeout     | retries per request | resend cut-off commands | reconnect delay        | other                          |
 * | ------------ | --------------------------------------------- | ------------- | ------------------- | ------------------- | ----------------------- | ---------------------- | ------------------------------ |
 * | `commands`   | broker command connection, presence store     | off           | `commandTimeoutMs`  | 1                   | no                      | {@link reconnectDelay} |                                |
 * | `subscriber` | broker subscriber connection                  | on            | none                | unlimited (single)  | yes                     | {@link reconnectDelay} | single: `autoResubscribe`; Cluster: `shardedSubscribers` |
 * | `limits`     | rate limits and per-user stream counts        | off           | `commandTimeoutMs`  | 1                   | no                      | ioredis default        | auto-pipelining; Cluster: credentials of `REDIS_URL` |
 * | `jobs`       | a pod's job records, media and BullMQ queue   | on            | none                | 1                   | yes                     | ioredis default        |                                |
 * | `queue`      | a worker's BullMQ worker, cancel subscriber   | on            | none                | unlimited (BullMQ)  | yes                     | ioredis default        |                                |
 *
 * "unlimited (single)": on a Cluster the subscriber keeps ioredis' per-node default. The
 * profile carries the connection name (`CLIENT SETNAME`, what `CLIENT LIST` shows). No profile
 * sets `lazyConnect` or `keepAlive`: every client connects at once, with ioredis' keepalive.
 *
 * Watchdogs are attached by the owner, which knows where to report: the broker's transports
 * guard the handshake of each single-Redis connection (`guardHandshake`: a subscriber
 * has no command timeout) and probe liveness themselves; the presence store and the limits
 * client run `watchConnection` (PINGs, plus the handshake guard on a single Redis). The
 * job connections have none.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** Cluster seed nodes, and the credentials to use on every node (default: none). */
export interface ClusterTarget {
  readonly nodes: readonly RedisNode[];
  readonly username?: string;
  readonly password?: string;
}

/** A single Redis (`redis://` or `rediss://` URL) or a Cluster. */
export type RedisTarget = string | ClusterTarget;

export type RedisClient = Redis | Cluster;

/** The role of a client; see the table above for what each sets. */
export type RedisProfile =
  | { readonly role: "commands"; readonly name: string; readonly commandTimeoutMs: number }
  | { readonly role: "subscriber"; readonly name: string }
  | { readonly role: "limits"; readonly name: string; readonly commandTimeoutMs: number }
  | { readonly role: "jobs"; readonly name: string }
  | { readonly role: "queue"; readonly name: string };

/** ioredis' reconnect delay: quick first retries, then at most one attempt a second. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1_000);
}

/** Where a connection's options go: the client itself, or each Cluster node's connection. */
interface ProfileOptions {
  /** Per connection: a single Redis' options, a Cluster's `redisOptions`. */
  readonly connection: RedisOptions;
  /** On the client, single or Cluster. */
  readonly client?: { enableOfflineQueue?: boolean; enableAutoPipelining?: boolean };
  /** A single Redis only. */
  readonly single?: RedisOptions;
  /** A Cluster only. */
  readonly cluster?: ClusterOptions;
  /** `retryStrategy` (single) / `clusterRetryStrategy` (Cluster); absent: ioredis' default. */
  readonly reconnect?: (times: number) => number;
}

function optionsOf(profile: RedisProfile): ProfileOptions {
  const connectionName = profile.name;
  switch (profile.role) {
    case "commands":
      return {
        // Never queue a command while disconnected, and never resend one whose reply was lost
        // (it may have run): a publish that rejected must not be delivered later, a presence
        // call is retried by its store with the same call id, not run late after newer ones.
        client: { enableOfflineQueue: false },
        connection: {
          connectionName,
          autoResendUnfulfilledCommands: false,
          commandTimeout: profile.commandTimeoutMs,
          maxRetriesPerRequest: 1,
        },
        reconnect: reconnectDelay,
      };
    case "subscriber":
      return {
        connection: { connectionName },
        // (Un)subscribes made while down wait for the reconnect; the broker bounds the wait.
        single: { autoResubscribe: true, maxRetriesPerRequest: null },
        cluster: { shardedSubscribers: true },
        reconnect: reconnectDelay,
      };
    case "limits":
      return {
        // A limit that cannot be checked is skipped at once rather than queued (fail open: the
        // publish itself still needs the broker, which then refuses with 503).
        client: { enableOfflineQueue: false, enableAutoPipelining: true },
        connection: {
          connectionName,
          commandTimeout: profile.commandTimeoutMs,
          maxRetriesPerRequest: 1,
          // A counting command cut by a reconnect is not sent again: it may have counted already.
          autoResendUnfulfilledCommands: false,
        },
      };
    case "jobs":
      // A request fails after one retry, so an HTTP request does not hang while Redis is down.
      return { connection: { connectionName, maxRetriesPerRequest: 1 } };
    case "queue":
      // Waits out a Redis outage, as BullMQ workers require.
      return { connection: { connectionName, maxRetriesPerRequest: null } };
  }
}

/** A client of `target` for `profile`'s role. */
export function createRedisClient(target: string, profile: RedisProfile): Redis;
export function createRedisClient(target: ClusterTarget, profile: RedisProfile): Cluster;
export function createRedisClient(target: RedisTarget, profile: RedisProfile): RedisClient;
export function createRedisClient(target: RedisTarget, profile: RedisProfile): RedisClient {
  const options = optionsOf(profile);
  if (typeof target === "string") {
    return new Redis(target, {
      ...options.client,
      ...options.connection,
      ...options.single,
      ...(options.reconnect && { retryStrategy: options.reconnect }),
    });
  }
  const { nodes, username, password } = target;
  return new Cluster(
    nodes.map((node) => ({ host: node.host, port: node.port })),
    {
      ...options.client,
      ...options.cluster,
      ...(options.reconnect && { clusterRetryStrategy: options.reconnect }),
      redisOptions: {
        ...options.connection,
        ...(username !== undefined && { username }),
        ...(password !== undefined && { password }),
      },
    },
  );
}

/** Where a client connects when given no URL. */
export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/** The Cluster of `clusterNodes` when there are any, else the single Redis at `url`. */
export function redisTarget(
  url: string | null | undefined,
  clusterNodes: readonly RedisNode[] | undefined,
  defaultUrl = DEFAULT_REDIS_URL,
): RedisTarget {
  return clusterNodes && clusterNodes.length > 0 ? { nodes: clusterNodes } : (url ?? defaultUrl);
}

/** The credentials a URL carries (`REDIS_URL` may carry them in cluster mode); none if invalid. */
export function credentialsOf(url: string | null): { username?: string; password?: string } {
  if (url === null) return {};
  try {
    const parsed = new URL(url);
    return {
      ...(parsed.username && { username: decodeURIComponent(parsed.username) }),
      ...(parsed.password && { password: decodeURIComponent(parsed.password) }),
    };
  } catch {
    return {};
  }
}
