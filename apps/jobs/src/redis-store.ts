/**
 * Redis mode's job records and media, shared by every pod and worker process.
 *
 *     <prefix>:job:{u:<userId>}:<jobId>      hash: the record (status, progress, attempt, …)
 *     <prefix>:jobs-active:{u:<userId>}      set: the user's queued/running job ids (the limit)
 *     <prefix>:media:{u:<userId>}:<jobId>    string: the GIF bytes
 *     <prefix>:jobs:cancel                   pub/sub: job ids to stop at once
 *
 * A user's keys share a Cluster slot (hash tag), so each transition is one atomic Lua script:
 * the compare-and-set that makes exactly one party win a terminal status. Only the owner's
 * keys are ever looked up, so another user's job simply does not exist (404). Records and
 * media expire `ttlSeconds` after their last change; GIFs are small (hundreds of KiB), and a
 * Redis value every pod can read is the simplest shared storage with the same lifetime.
 */
import { DEFAULT_REDIS_URL, luaReader, type RedisClient, type RedisTarget } from "@realtime/redis";
import type { JobsRedisConfig } from "./config.ts";
import type {
  Finish,
  JobRecord,
  JobStatus,
  JobStore,
  MediaStore,
  ProgressOutcome,
} from "./types.ts";

export type RedisConnection = RedisClient;

/**
 * Where the jobs' connections go: the pods' Cluster or single Redis. Pods connect with the
 * `jobs` profile of `createRedisClient` (a request fails after one retry, so an HTTP
 * request does not hang while Redis is down); workers with `queue` (BullMQ workers wait out
 * an outage).
 */
export function jobsRedisTarget(config: JobsRedisConfig): RedisTarget {
  return config.mode === "cluster"
    ? { nodes: config.clusterNodes }
    : (config.url ?? DEFAULT_REDIS_URL);
}

export function jobKeys(prefix: string, userId: string, jobId: string) {
  const tag = `{u:${userId}}`;
  return {
    record: `${prefix}:job:${tag}:${jobId}`,
    recordPrefix: `${prefix}:job:${tag}:`,
    active: `${prefix}:jobs-active:${tag}`,
    media: `${prefix}:media:${tag}:${jobId}`,
  };
}

export function cancelChannel(prefix: string): string {
  return `${prefix}:jobs:cancel`;
}

const readLua = luaReader(new URL("./lua/", import.meta.url));
/** `live(status)`, which every transition script starts with. */
const LIVE = readLua("job-live.lua");

// KEYS: record, active. ARGV: jobId, maxActive, ttl, recordPrefix, field, value, …
const CREATE = LIVE + readLua("job-create.lua");

// KEYS: record. ARGV: now, ttl.
const START = LIVE + readLua("job-start.lua");

// KEYS: record. ARGV: progress, now, ttl. → 1 raised, 0 unchanged, -1 terminal or gone.
const PROGRESS = LIVE + readLua("job-progress.lua");

// KEYS: record, active. ARGV: jobId, status, now, ttl, field, value, …
const FINISH = LIVE + readLua("job-finish.lua");

export class RedisJobStore implements JobStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #ttlSeconds: number;

  constructor(redis: RedisConnection, prefix: string, ttlSeconds: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlSeconds = ttlSeconds;
  }

  async create(record: JobRecord, maxActive: number): Promise<number> {
    const keys = jobKeys(this.#prefix, record.userId, record.jobId);
    const fields = Object.entries(toRecordFields(record)).flat();
    const created = await this.#redis.eval(
      CREATE,
      2,
      keys.record,
      keys.active,
      record.jobId,
      maxActive,
      this.#ttlSeconds,
      keys.recordPrefix,
      ...fields,
    );
    return typeof created === "number" ? created : 0;
  }

  async get(userId: string, jobId: string): Promise<JobRecord | null> {
    const hash = await this.#redis.hgetall(jobKeys(this.#prefix, userId, jobId).record);
    return fromHash(hash);
  }

  async start(userId: string, jobId: string): Promise<JobRecord | null> {
    const key = jobKeys(this.#prefix, userId, jobId).record;
    const reply = await this.#redis.eval(START, 1, key, Date.now(), this.#ttlSeconds);
    return fromFlat(reply);
  }

  async progress(userId: string, jobId: string, progress: number): Promise<ProgressOutcome> {
    const key = jobKeys(this.#prefix, userId, jobId).record;
    const reply = await this.#redis.eval(PROGRESS, 1, key, progress, Date.now(), this.#ttlSeconds);
    return reply === 1 ? "raised" : reply === 0 ? "unchanged" : "terminal";
  }

  async finish(userId: string, jobId: string, finish: Finish): Promise<JobRecord | null> {
    const keys = jobKeys(this.#prefix, userId, jobId);
    const extra: string[] = [];
    if (finish.status === "completed") {
      extra.push("progress", "100", "result", JSON.stringify(finish.result));
    } else if (finish.status === "failed") {
      extra.push("error", JSON.stringify(finish.error));
    }
    const reply = await this.#redis.eval(
      FINISH,
      2,
      keys.record,
      keys.active,
      jobId,
      finish.status,
      Date.now(),
      this.#ttlSeconds,
      ...extra,
    );
    return fromFlat(reply);
  }
}

export class RedisMediaStore implements MediaStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #ttlSeconds: number;

  constructor(redis: RedisConnection, prefix: string, ttlSeconds: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlSeconds = ttlSeconds;
  }

  async put(userId: string, jobId: string, bytes: Uint8Array): Promise<void> {
    const key = jobKeys(this.#prefix, userId, jobId).media;
    await this.#redis.set(key, Buffer.from(bytes), "EX", this.#ttlSeconds);
  }

  get(userId: string, jobId: string): Promise<Buffer | null> {
    return this.#redis.getBuffer(jobKeys(this.#prefix, userId, jobId).media);
  }

  async delete(userId: string, jobId: string): Promise<void> {
    await this.#redis.del(jobKeys(this.#prefix, userId, jobId).media);
  }
}

function toRecordFields(record: JobRecord): Record<string, string> {
  return {
    jobId: record.jobId,
    userId: record.userId,
    status: record.status,
    progress: String(record.progress),
    attempt: String(record.attempt),
    spec: JSON.stringify(record.spec),
    createdAt: String(record.createdAt),
    updatedAt: String(record.updatedAt),
  };
}

function fromFlat(reply: unknown): JobRecord | null {
  if (!Array.isArray(reply)) return null;
  const hash: Record<string, string> = {};
  for (let i = 0; i + 1 < reply.length; i += 2) hash[String(reply[i])] = String(reply[i + 1]);
  return fromHash(hash);
}

function fromHash(hash: Record<string, string>): JobRecord | null {
  if (!hash.jobId || !hash.userId || !hash.status || !hash.spec) return null;
  const record: JobRecord = {
    jobId: hash.jobId,
    userId: hash.userId,
    status: hash.status as JobStatus,
    progress: Number(hash.progress ?? 0),
    attempt: Number(hash.attempt ?? 0),
    spec: JSON.parse(hash.spec),
    createdAt: Number(hash.createdAt),
    updatedAt: Number(hash.updatedAt),
    ...(hash.result ? { result: JSON.parse(hash.result) } : {}),
    ...(hash.error ? { error: JSON.parse(hash.error) } : {}),
  };
  return record;
}
