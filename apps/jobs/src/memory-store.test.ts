/**
 * `MemoryJobStore` (embedded mode): the shared JobStore contract, then what only the memory
 * store does — listing unfinished jobs for shutdown, and dropping finished ones after the TTL.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryJobStore } from "./memory-store.ts";
import { queuedRecord, runJobStoreContract } from "./testing/job-store-contract.ts";
import type { JobRecord } from "./types.ts";

runJobStoreContract("MemoryJobStore", async () => {
  const store = new MemoryJobStore(60_000);
  return { a: store, b: store, teardown: async () => {} };
});

describe("MemoryJobStore", () => {
  it("active() lists the queued and running jobs, not the finished ones", async () => {
    const store = new MemoryJobStore(60_000);
    const [queued, running, done] = [1, 2, 3].map(() => queuedRecord("u_active"));
    assert.ok(queued && running && done);
    for (const record of [queued, running, done]) await store.create(record, 3);
    await store.start("u_active", running.jobId);
    await store.finish("u_active", done.jobId, { status: "cancelled" });
    const ids = store.active().map((r) => r.jobId);
    assert.deepEqual(ids.sort(), [queued.jobId, running.jobId].sort());
  });

  it("sweep() drops finished jobs older than the TTL, and reports each one", async () => {
    let now = 1_000_000;
    const store = new MemoryJobStore(10_000, () => now);
    const expired: JobRecord[] = [];
    store.onExpire = (record) => expired.push(record);
    const [old, fresh, live] = [1, 2, 3].map(() => queuedRecord("u_sweep"));
    assert.ok(old && fresh && live);
    for (const record of [old, fresh, live]) await store.create(record, 3);
    await store.finish("u_sweep", old.jobId, { status: "cancelled" });
    now += 6_000;
    await store.finish("u_sweep", fresh.jobId, { status: "cancelled" });
    now += 6_000;
    store.sweep();
    assert.deepEqual(
      expired.map((r) => r.jobId),
      [old.jobId],
    );
    assert.equal(await store.get("u_sweep", old.jobId), null);
    assert.equal((await store.get("u_sweep", fresh.jobId))?.status, "cancelled");
    assert.equal((await store.get("u_sweep", live.jobId))?.status, "queued", "never a live job");
  });
});
