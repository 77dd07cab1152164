/**
 * The contract every {@link JobStore} must meet, as one shared suite (like the broker's
 * `runBrokerContract`): `MemoryJobStore` runs it in `memory-store.test.ts`, `RedisJobStore`
 * on a single Redis and on a Redis Cluster in `redis-store.int.test.ts`.
 *
 * `setup` returns two stores on one backend — two parties (a pod and a worker, two workers)
 * that race for the same transitions; each case gets a fresh pair and tears it down, even
 * when the case fails.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Finish, JobRecord, JobStore, MediaResult } from "../types.ts";
import { newJobId } from "../types.ts";

export interface JobStorePair {
  /** One party. */
  readonly a: JobStore;
  /** Another party on the same backend. */
  readonly b: JobStore;
  teardown(): Promise<void>;
}

let users = 0;
/** A user id no other case uses (the backend may be shared between cases). */
const freshUser = () => `u_${process.pid}_${++users}`;

/** A queued record as the job system stores it on submit. */
export function queuedRecord(userId: string, prompt = "a lighthouse at dusk"): JobRecord {
  const now = Date.now();
  return {
    jobId: newJobId(),
    userId,
    status: "queued",
    progress: 0,
    attempt: 0,
    spec: { prompt, aspectRatio: "1:1", width: 64, height: 64, frames: 6, delayMs: 80 },
    createdAt: now,
    updatedAt: now,
  };
}

const RESULT: MediaResult = { url: "/api/media/x", width: 64, height: 64, frames: 6, bytes: 1234 };

export function runJobStoreContract(name: string, setup: () => Promise<JobStorePair>): void {
  const withPair = async (body: (pair: JobStorePair) => Promise<void>) => {
    const pair = await setup();
    try {
      await body(pair);
    } finally {
      await pair.teardown();
    }
  };

  describe(`JobStore contract: ${name}`, () => {
    it("create stores a queued record that both parties read back unchanged", () =>
      withPair(async ({ a, b }) => {
        const record = queuedRecord(freshUser());
        assert.equal(await a.create(record, 2), 1);
        assert.deepEqual(await a.get(record.userId, record.jobId), record);
        assert.deepEqual(await b.get(record.userId, record.jobId), record);
      }));

    it("a job exists only for its owner; an unknown id is null", () =>
      withPair(async ({ a, b }) => {
        const record = queuedRecord(freshUser());
        await a.create(record, 2);
        assert.equal(await b.get(freshUser(), record.jobId), null);
        assert.equal(await b.get(record.userId, newJobId()), null);
        assert.equal(await b.start(freshUser(), record.jobId), null);
        assert.equal(await b.finish(freshUser(), record.jobId, { status: "cancelled" }), null);
        assert.equal((await a.get(record.userId, record.jobId))?.status, "queued");
      }));

    it("create counts the user's queued and running jobs: its place, or 0 past the limit", () =>
      withPair(async ({ a, b }) => {
        const user = freshUser();
        const [first, second, third] = [1, 2, 3].map(() => queuedRecord(user));
        assert.ok(first && second && third);
        assert.equal(await a.create(first, 2), 1);
        assert.equal(await b.create(second, 2), 2);
        assert.equal(await a.create(third, 2), 0, "refused at the limit");
        assert.equal(await a.get(user, third.jobId), null, "a refused job is not stored");
        assert.equal(await b.create(queuedRecord(freshUser()), 2), 1, "other users unaffected");
        await a.start(user, first.jobId);
        assert.equal(await b.create(third, 2), 0, "running jobs count too");
        await b.finish(user, first.jobId, { status: "cancelled" });
        assert.equal(await a.create(third, 2), 2, "a terminal job frees its slot");
      }));

    it("start moves queued or running to running, counting attempts; never a terminal job", () =>
      withPair(async ({ a, b }) => {
        const record = queuedRecord(freshUser());
        await a.create(record, 2);
        const started = await b.start(record.userId, record.jobId);
        assert.equal(started?.status, "running");
        assert.equal(started?.attempt, 1);
        assert.equal(started?.spec.prompt, record.spec.prompt);
        const retried = await a.start(record.userId, record.jobId);
        assert.equal(retried?.attempt, 2, "a retry after a lost worker is the next attempt");
        await a.finish(record.userId, record.jobId, { status: "cancelled" });
        assert.equal(await b.start(record.userId, record.jobId), null);
        assert.equal((await b.get(record.userId, record.jobId))?.attempt, 2);
      }));

    it("progress rises only while running, never goes down, and says when the job ended", () =>
      withPair(async ({ a, b }) => {
        const record = queuedRecord(freshUser());
        const { userId, jobId } = record;
        await a.create(record, 2);
        assert.equal(await a.progress(userId, jobId, 10), "unchanged", "not running yet");
        await a.start(userId, jobId);
        assert.equal(await a.progress(userId, jobId, 10), "raised");
        assert.equal(await b.progress(userId, jobId, 10), "unchanged", "equal is no rise");
        assert.equal(await b.progress(userId, jobId, 5), "unchanged", "never lowered");
        assert.equal((await b.get(userId, jobId))?.progress, 10);
        await b.start(userId, jobId);
        assert.equal(await a.progress(userId, jobId, 8), "unchanged", "kept across attempts");
        assert.equal(await a.progress(userId, jobId, 40), "raised");
        await b.finish(userId, jobId, { status: "cancelled" });
        assert.equal(await a.progress(userId, jobId, 60), "terminal");
        assert.equal(await a.progress(userId, newJobId(), 60), "terminal", "gone counts as ended");
        assert.equal((await a.get(userId, jobId))?.progress, 40);
      }));

    it("finish: completed carries the result at 100%, failed its error, cancelled neither", () =>
      withPair(async ({ a, b }) => {
        const user = freshUser();
        const [done, failed, cancelled] = [1, 2, 3].map(() => queuedRecord(user));
        assert.ok(done && failed && cancelled);
        for (const record of [done, failed, cancelled]) await a.create(record, 3);
        await a.start(user, done.jobId);
        await a.progress(user, done.jobId, 50);
        const completed = await b.finish(user, done.jobId, { status: "completed", result: RESULT });
        assert.equal(completed?.status, "completed");
        assert.equal(completed?.progress, 100);
        assert.deepEqual(completed?.result, RESULT);
        assert.deepEqual(await a.get(user, done.jobId), completed);

        const error = { code: "render_failed", message: "rendering failed" };
        const f = await b.finish(user, failed.jobId, { status: "failed", error });
        assert.equal(f?.status, "failed");
        assert.deepEqual(f?.error, error);
        assert.equal(f?.result, undefined);

        const c = await b.finish(user, cancelled.jobId, { status: "cancelled" });
        assert.equal(c?.status, "cancelled");
        assert.equal(c?.result, undefined);
        assert.equal(c?.error, undefined);
        assert.equal(c?.progress, 0);
      }));

    it("a terminal status is final: the second finish loses and changes nothing", () =>
      withPair(async ({ a, b }) => {
        const record = queuedRecord(freshUser());
        await a.create(record, 2);
        await a.start(record.userId, record.jobId);
        const won = await a.finish(record.userId, record.jobId, { status: "cancelled" });
        assert.equal(won?.status, "cancelled");
        const late: Finish = { status: "completed", result: RESULT };
        assert.equal(await b.finish(record.userId, record.jobId, late), null);
        assert.deepEqual(await b.get(record.userId, record.jobId), won);
      }));

    it("parties racing to end a job: exactly one wins, and the record is the winner's", () =>
      withPair(async ({ a, b }) => {
        const user = freshUser();
        for (let round = 0; round < 10; round++) {
          const record = queuedRecord(user);
          assert.equal(await a.create(record, 1), 1);
          await b.start(user, record.jobId);
          const finishes: Finish[] = [
            { status: "completed", result: RESULT },
            { status: "cancelled" },
            { status: "failed", error: { code: "worker_lost", message: "lost" } },
            { status: "cancelled" },
          ];
          const outcomes = await Promise.all(
            finishes.map((finish, i) => (i % 2 ? b : a).finish(user, record.jobId, finish)),
          );
          const winners = outcomes.filter((o) => o !== null);
          assert.equal(winners.length, 1, `round ${round}: one winner`);
          assert.deepEqual(await a.get(user, record.jobId), winners[0]);
        }
      }));
  });
}
