/**
 * What the job system needs of the configuration. The service reads these from its
 * environment (`JOBS_*`, `REDIS_*`; see `apps/service/src/config.ts`, which owns the variable
 * names, defaults and validation) and hands them over; its `Config` fits these shapes.
 */

export interface JobsConfig {
  /** Jobs one user may have queued or running at once (`JOBS_MAX_PER_USER`). Default 2. */
  readonly maxPerUser: number;
  /**
   * Renders at once per process (`JOBS_CONCURRENCY`): worker threads of the embedded pod, or
   * of one `npm run worker` process. Default: CPUs − 1, at least 1, at most 4.
   */
  readonly concurrency: number;
  /** Frames per animation (`JOBS_FRAMES`). Default 24. */
  readonly frames: number;
  /** Long side of the animation in pixels (`JOBS_FRAME_SIZE`). Default 320. */
  readonly frameSize: number;
  /** Least time between two progress events of one job, in ms (`JOBS_PROGRESS_INTERVAL_MS`). Default 250. */
  readonly progressIntervalMs: number;
  /** Attempts a job gets when its worker dies (`JOBS_MAX_ATTEMPTS`). Default 2. */
  readonly maxAttempts: number;
  /**
   * Redis mode: the queue lock of a running job, in ms (`JOBS_LOCK_MS`); a job whose worker
   * stopped renewing it is retried (or failed) after about this long to twice this. Default 30000.
   */
  readonly lockMs: number;
  /** How long finished jobs and their GIFs are kept, in seconds (`JOBS_RESULT_TTL_SECONDS`). Default 3600. */
  readonly resultTtlSeconds: number;
  /** Embedded mode: directory for GIFs (`JOBS_MEDIA_DIR`). Default null: a temp dir removed on exit. */
  readonly mediaDir: string | null;
}

/** The Redis the pods use (`REDIS_URL` / `REDIS_CLUSTER_NODES`, `REDIS_PREFIX`, …). */
export interface JobsRedisConfig {
  /** `"embedded"`: no Redis, the pod renders jobs itself. */
  readonly mode: "embedded" | "standalone" | "cluster";
  readonly url: string | null;
  readonly prefix: string;
  readonly clusterNodes: readonly { readonly host: string; readonly port: number }[];
  /** Replicas that must hold a publish before it is acknowledged (`REDIS_WAIT_REPLICAS`). */
  readonly waitReplicas: number;
  /** How long a publish waits for them, in ms (`REDIS_WAIT_TIMEOUT_MS`). */
  readonly waitTimeoutMs: number;
}

export interface JobSystemConfig {
  readonly jobs: JobsConfig;
  readonly redis: JobsRedisConfig;
}
