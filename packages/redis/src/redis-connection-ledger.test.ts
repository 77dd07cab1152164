/**
 * {@link RedisConnectionLedger} with a Redis that cannot be asked: it admits on local counts
 * (fail open) and tells Redis the truth on the next write. Against a real Redis:
 * `redis-connection-ledger.int.test.ts`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RedisClient } from "./redis-client.ts";
import { RedisConnectionLedger } from "./redis-connection-ledger.ts";

describe("RedisConnectionLedger without Redis", () => {
  it("admits on local counts when Redis fails, and writes the count once it can", async () => {
    const writes: [string, number][] = [];
    let up = false;
    const redis = {
      rtConnAcquire: async () => {
        throw new Error("connection refused");
      },
      rtConnWrite: async (key: string, _pod: string, count: number) => {
        if (!up) throw new Error("connection refused");
        writes.push([key, count]);
        return 1;
      },
    } as unknown as RedisClient;
    const ledger = new RedisConnectionLedger({
      redis,
      max: 2,
      leaseTtlMs: 30_000,
      prefix: "t",
      podId: "p1",
    });
    assert.equal(typeof (await ledger.acquire("u1")), "function");
    assert.equal(typeof (await ledger.acquire("u1")), "function");
    assert.equal(await ledger.acquire("u1"), null);
    up = true;
    ledger.refresh();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(writes, [["t:conns:u1", 2]]);
    ledger.close();
  });
});
