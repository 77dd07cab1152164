/**
 * What a chaos run breaks: its own redis-server (or a 3-master Cluster with a replica each) and
 * N service processes (through `withPods` of `@realtime/testkit/pods`). Every pod reaches a
 * single Redis through a TCP proxy of its own, so one pod's link can be black-holed; every
 * third pod speaks cleartext HTTP/2 only (`HTTP2=h2c`), the others HTTP/1.1, so both protocols
 * carry streams and publishes, and a subscriber moving between pods resumes across them.
 *
 * The pods run with the per-user limits off (`RATE_LIMIT_*=0`, `MAX_CONNECTIONS_PER_USER=0`):
 * a run has a handful of users with many streams each, reconnecting far more often than a
 * person's tabs would. Reconnects wait the server's `retry:` (1 s here, without the server's
 * jitter: each subscriber adds its own, from the seed).
 */
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import {
  redisCli,
  startRedis,
  startRedisCluster,
  TcpProxy,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";

/**
 * How long a pod restarted by a fault may take to be ready: other faults may overlap its start
 * (Redis frozen for up to 8 s, its link black-holed for 10 s, both cores busy), and it must
 * ride them out; seed 1416 needed more than the tests' 20 s.
 */
const READY = { readyTimeoutMs: 60_000 };

export interface StageOptions {
  readonly cluster: boolean;
  readonly pods: number;
}

const POD_ENV = {
  MAX_CONNECTIONS_PER_USER: "0",
  RATE_LIMIT_CHAT_MAX: "0",
  RATE_LIMIT_STREAMS_MAX: "0",
  RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
  RATE_LIMIT_PRESENCE_MAX: "0",
  // Long enough that a SIGTERM closes streams at spread-out moments, short enough for a run.
  SHUTDOWN_DRAIN_MS: "1500",
  RETRY_MS: "1000",
  RETRY_JITTER_MS: "0",
};

export class Stage {
  readonly cluster: boolean;
  readonly pods: Pod[];
  /** Per pod: whether it speaks h2c (else HTTP/1.1). */
  readonly h2c: boolean[];
  /** Single Redis: each pod's proxy to it. */
  readonly proxies: TcpProxy[];
  readonly redis: TestRedis | null;
  readonly redisCluster: TestRedisCluster | null;
  /** Single Redis: its directory (where `SAVE` writes `dump.rdb`). */
  readonly redisDir: string;
  readonly #hogs = new Set<ReturnType<typeof spawn>>();
  /** Processes a fault froze (SIGSTOP) and has not woken yet. */
  readonly #frozen = new Set<number>();
  #stopped = false;

  private constructor(init: {
    cluster: boolean;
    pods: Pod[];
    h2c: boolean[];
    proxies: TcpProxy[];
    redis: TestRedis | null;
    redisCluster: TestRedisCluster | null;
    redisDir: string;
  }) {
    this.cluster = init.cluster;
    this.pods = init.pods;
    this.h2c = init.h2c;
    this.proxies = init.proxies;
    this.redis = init.redis;
    this.redisCluster = init.redisCluster;
    this.redisDir = init.redisDir;
  }

  static async start(options: StageOptions): Promise<Stage> {
    const h2c = Array.from({ length: options.pods }, (_, i) => i % 3 === 2);
    const podEnv = (i: number) => ({ ...POD_ENV, ...(h2c[i] ? { HTTP2: "h2c" } : {}) });
    if (options.cluster) {
      const redisCluster = await startRedisCluster(3, { replicasPerMaster: 1 });
      const seeds = [...redisCluster.nodes, ...redisCluster.replicas].map(
        (n) => `${n.host}:${n.port}`,
      );
      // A publish is acknowledged once its shard's replica holds it: without that, a master
      // frozen past its node timeout acknowledges writes its promoted replica never gets, and
      // a failover drops what the master acknowledged last (docs/operations.md).
      const clusterEnv = { REDIS_CLUSTER_NODES: seeds.join(","), REDIS_WAIT_REPLICAS: "1" };
      const pods = await withPods(options.pods, (i) => ({ ...podEnv(i), ...clusterEnv }), READY);
      return new Stage({
        cluster: true,
        pods,
        h2c,
        proxies: [],
        redis: null,
        redisCluster,
        redisDir: "",
      });
    }
    const redis = await startRedis();
    const redisDir = (await redisCli(redis.port, "CONFIG", "GET", "dir")).split("\n")[1] ?? "";
    const proxies = await Promise.all(h2c.map(() => TcpProxy.start(redis.port)));
    const pods = await withPods(
      options.pods,
      (i) => ({ ...podEnv(i), REDIS_URL: (proxies[i] as TcpProxy).url }),
      READY,
    );
    return new Stage({ cluster: false, pods, h2c, proxies, redis, redisCluster: null, redisDir });
  }

  /** The single Redis's pid now (it changes with every restart). */
  async redisPid(): Promise<number> {
    if (!this.redis) throw new Error("no single Redis");
    const info = await redisCli(this.redis.port, "INFO", "server");
    return Number(/process_id:(\d+)/.exec(info)?.[1] ?? 0);
  }

  /** SIGSTOPs `pid`, remembering it so that {@link stop} wakes it even if the fault did not. */
  freeze(pid: number): void {
    this.#frozen.add(pid);
    process.kill(pid, "SIGSTOP");
  }

  thaw(pid: number): void {
    this.#frozen.delete(pid);
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // it died meanwhile
    }
  }

  /** Starts one busy process per core (CPU starvation); returns a function that ends them. */
  hogCpus(): () => void {
    const hogs = Array.from({ length: availableParallelism() }, () => {
      const hog = spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" });
      this.#hogs.add(hog);
      hog.once("exit", () => this.#hogs.delete(hog));
      return hog;
    });
    return () => {
      for (const hog of hogs) hog.kill("SIGKILL");
    };
  }

  /** Stops everything this stage started; every frozen process is woken first. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const hog of this.#hogs) hog.kill("SIGKILL");
    for (const pid of [...this.#frozen]) this.thaw(pid);
    await stopPods(this.pods);
    await Promise.all(this.proxies.map((proxy) => proxy.close()));
    await this.redis?.stop();
    await this.redisCluster?.stop();
  }
}
