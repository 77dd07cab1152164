/**
 * {@link ConnectionLimits} on its own: releases are idempotent, concurrent opens see each
 * other, and a Redis that cannot be asked admits on local counts (fail open) and is told the
 * truth on the next write.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionLimits } from "./connection-limits.ts";
import type { LimitsRedis } from "./redis.ts";

const options = { perUser: 2, perIp: 3, leaseTtlMs: 30_000 };

describe("ConnectionLimits", () => {
  it("counts per user and per IP; a release frees one slot, once", async () => {
    const limits = new ConnectionLimits(options);
    const first = await limits.acquire("u1", "10.0.0.1");
    const second = await limits.acquire("u1", "10.0.0.2");
    assert.equal(typeof first, "function");
    assert.equal(await limits.acquire("u1", "10.0.0.3"), "per_user_limit");
    assert.equal(limits.ipCount("10.0.0.3"), 0, "a refusal holds no slot");
    (first as () => void)();
    (first as () => void)();
    assert.equal(limits.userCount("u1"), 1);
    assert.equal(typeof (await limits.acquire("u1", "10.0.0.1")), "function");
    assert.equal(typeof second, "function");
    limits.close();
  });

  it("concurrent opens cannot all slip under the cap", async () => {
    const limits = new ConnectionLimits({ ...options, perUser: 0 });
    const results = await Promise.all(
      Array.from({ length: 10 }, () => limits.acquire("u", "10.0.0.9")),
    );
    assert.equal(results.filter((r) => typeof r === "function").length, 3);
    assert.equal(results.filter((r) => r === "per_ip_limit").length, 7);
    limits.close();
  });

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
    } as unknown as LimitsRedis;
    const limits = new ConnectionLimits({ ...options, redis, prefix: "t", podId: "p1" });
    assert.equal(typeof (await limits.acquire("u1", "10.0.0.1")), "function");
    assert.equal(typeof (await limits.acquire("u1", "10.0.0.1")), "function");
    assert.equal(await limits.acquire("u1", "10.0.0.1"), "per_user_limit");
    up = true;
    limits.refresh();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(writes, [["t:conns:u1", 2]]);
    limits.close();
  });
});
