/**
 * Replaces a Redis connection that went silent. A network partition leaves a TCP connection
 * open and carrying nothing; ioredis then times each command out (`commandTimeout`) but keeps
 * the connection, and TCP keepalive notices only after minutes. The broker has its own
 * publish-and-receive probe; every other client of a pod (presence, limits) gets this: a PING
 * every `intervalMs` while ready, and a reconnect when `misses` PINGs in a row go unanswered for
 * `timeoutMs` each — two by default, so one stall of the server (a fork for a snapshot, a slow
 * script) does not make every pod reconnect at once. On a Cluster a reconnect is of the whole
 * client (ioredis has no per-node one); the silent master is usually being failed over anyway.
 */
import type { Cluster, Redis } from "ioredis";

export interface WatchdogOptions {
  /** Between pings, in ms. Default 5000. */
  readonly intervalMs?: number;
  /** How long a ping may take before the connection is replaced, in ms. Default 2000. */
  readonly timeoutMs?: number;
  /** Unanswered PINGs in a row that make the connection stale. Default 2. */
  readonly misses?: number;
  /** Told when a silent connection is replaced. */
  readonly onStale?: (reason: string) => void;
}

/**
 * How long a connection may stay between TCP connect and ready (the ready check: `INFO`, and
 * `CLIENT SETNAME`) before it is replaced. Generous: a Redis loading a large RDB answers the
 * check with "loading" for as long as that takes, and is replaced needlessly (harmlessly) past it.
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Replaces a connection whose handshake stalls: TCP is up but Redis never answers the ready
 * check — it was frozen when the connection opened, and the link went silent before it woke (a
 * pod started during a Redis stall, then partitioned). ioredis waits for that answer forever on
 * a client without a command timeout (a subscriber's), and the {@link watchConnection} PINGs
 * only start once a connection is ready: the pod never became ready again (`npm run chaos`,
 * seed 5022). Returns the function that stops it.
 */
export function guardHandshake(
  client: Redis,
  timeoutMs = HANDSHAKE_TIMEOUT_MS,
  onStalled?: (reason: string) => void,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  const clear = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const onConnect = () => {
    clear();
    timer = setTimeout(() => {
      timer = undefined;
      if (client.status !== "connect") return;
      onStalled?.(`no answer to the connection's handshake within ${timeoutMs} ms: reconnecting`);
      client.disconnect(true);
    }, timeoutMs);
    timer.unref();
  };
  client.on("connect", onConnect);
  client.on("ready", clear);
  client.on("close", clear);
  return () => {
    clear();
    client.off("connect", onConnect);
    client.off("ready", clear);
    client.off("close", clear);
  };
}

/**
 * Starts watching `client` (and, for a single Redis, its handshakes: {@link guardHandshake});
 * returns the function that stops it.
 */
export function watchConnection(
  client: Redis | Cluster,
  options: WatchdogOptions = {},
): () => void {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const allowed = options.misses ?? 2;
  const unguard =
    "nodes" in client && typeof client.nodes === "function"
      ? () => {}
      : guardHandshake(client as Redis, HANDSHAKE_TIMEOUT_MS, options.onStale);
  let checking = false;
  let missed = 0;
  const check = async () => {
    if (checking || client.status !== "ready") return;
    checking = true;
    try {
      missed = (await pingAll(client, timeoutMs)) ? 0 : missed + 1;
      if (missed >= allowed && client.status === "ready") {
        missed = 0;
        options.onStale?.(
          `${allowed} PINGs in a row unanswered within ${timeoutMs} ms: reconnecting`,
        );
        client.disconnect(true);
      }
    } finally {
      checking = false;
    }
  };
  const timer = setInterval(() => void check(), options.intervalMs ?? 5_000);
  timer.unref();
  return () => {
    clearInterval(timer);
    unguard();
  };
}

/** Whether every master (or the one server) answered a PING in time; errors count as answers. */
async function pingAll(client: Redis | Cluster, timeoutMs: number): Promise<boolean> {
  const targets =
    "nodes" in client && typeof client.nodes === "function"
      ? client.nodes("master")
      : [client as Redis];
  const replies = await Promise.all(targets.map((node) => answersWithin(node, timeoutMs)));
  return replies.every(Boolean);
}

function answersWithin(node: Redis, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    // A refusal (e.g. LOADING, or a command timeout shorter than ours) is still a live peer
    // or a reconnect ioredis already handles; only silence counts.
    node.ping().then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve(!(error instanceof Error && /timed out/i.test(error.message)));
      },
    );
  });
}
