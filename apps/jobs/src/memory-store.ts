/**
 * Embedded mode's job records and media: records in a Map, GIFs as files in a private temp
 * directory (`JOBS_MEDIA_DIR` or a fresh one under the OS temp dir, removed on close).
 * Terminal jobs and their files are dropped `ttlMs` after they finished.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  type Finish,
  isTerminal,
  JOB_ID_PATTERN,
  type JobRecord,
  type JobStore,
  type MediaStore,
  type ProgressOutcome,
} from "./types.ts";

export class MemoryJobStore implements JobStore {
  readonly #records = new Map<string, JobRecord>();
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** Called with each record dropped after its TTL (to remove its media). */
  onExpire: (record: JobRecord) => void = () => {};

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  async create(record: JobRecord, maxActive: number): Promise<number> {
    let active = 0;
    for (const r of this.#records.values()) {
      if (r.userId === record.userId && !isTerminal(r.status)) active++;
    }
    if (active >= maxActive) return 0;
    this.#records.set(record.jobId, record);
    return active + 1;
  }

  async get(userId: string, jobId: string): Promise<JobRecord | null> {
    return this.#find(userId, jobId);
  }

  async start(userId: string, jobId: string): Promise<JobRecord | null> {
    const record = this.#find(userId, jobId);
    if (!record || isTerminal(record.status)) return null;
    return this.#put({
      ...record,
      status: "running",
      attempt: record.attempt + 1,
      updatedAt: this.#now(),
    });
  }

  async progress(userId: string, jobId: string, progress: number): Promise<ProgressOutcome> {
    const record = this.#find(userId, jobId);
    if (!record || isTerminal(record.status)) return "terminal";
    if (record.status !== "running" || progress <= record.progress) return "unchanged";
    this.#put({ ...record, progress, updatedAt: this.#now() });
    return "raised";
  }

  async finish(userId: string, jobId: string, finish: Finish): Promise<JobRecord | null> {
    const record = this.#find(userId, jobId);
    if (!record || isTerminal(record.status)) return null;
    const base = { ...record, status: finish.status, updatedAt: this.#now() };
    if (finish.status === "completed") {
      return this.#put({ ...base, progress: 100, result: finish.result });
    }
    if (finish.status === "failed") return this.#put({ ...base, error: finish.error });
    return this.#put(base);
  }

  active(): JobRecord[] {
    return [...this.#records.values()].filter((r) => !isTerminal(r.status));
  }

  /** Drops terminal records older than the TTL. */
  sweep(): void {
    const cutoff = this.#now() - this.#ttlMs;
    for (const [id, record] of this.#records) {
      if (isTerminal(record.status) && record.updatedAt < cutoff) {
        this.#records.delete(id);
        this.onExpire(record);
      }
    }
  }

  /**
   * Read without awaiting: each transition checks and writes in one synchronous step, which is
   * what makes it a compare-and-set (an `await` between the two let racing calls both win).
   */
  #find(userId: string, jobId: string): JobRecord | null {
    const record = this.#records.get(jobId);
    return record && record.userId === userId ? record : null;
  }

  #put(record: JobRecord): JobRecord {
    this.#records.set(record.jobId, record);
    return record;
  }
}

/** GIFs as `<dir>/<userId>/<jobId>.gif`: the path itself encodes the owner. */
export class FileMediaStore implements MediaStore {
  readonly #configured: string | null;
  #dir: string | null;

  /** Uses `dir`, or a private temp directory (made on first use) that {@link close} removes. */
  constructor(dir: string | null) {
    this.#configured = dir;
    this.#dir = dir;
  }

  /** The directory, created on first use. */
  get dir(): string {
    this.#dir ??= mkdtempSync(join(tmpdir(), "realtime-media-"));
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    return this.#dir;
  }

  async put(userId: string, jobId: string, bytes: Uint8Array): Promise<void> {
    const path = this.#path(userId, jobId);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, bytes, { mode: 0o600 });
  }

  async get(userId: string, jobId: string): Promise<Buffer | null> {
    if (this.#dir === null) return null;
    try {
      return await readFile(this.#path(userId, jobId));
    } catch {
      return null;
    }
  }

  async delete(userId: string, jobId: string): Promise<void> {
    if (this.#dir === null) return;
    await rm(this.#path(userId, jobId), { force: true });
  }

  close(): void {
    if (this.#configured === null && this.#dir !== null) {
      rmSync(this.#dir, { recursive: true, force: true });
      this.#dir = null;
    }
  }

  #path(userId: string, jobId: string): string {
    // User ids are channel ids (no "/" or ".."); job ids are checked before they get here.
    if (!JOB_ID_PATTERN.test(jobId)) throw new RangeError("invalid job id");
    return join(this.dir, userId, `${jobId}.gif`);
  }
}
