/**
 * {@link ConnectionLimits} on its own: releases are idempotent, concurrent opens see each
 * other, a per-user refusal holds no per-IP slot. What the per-user ledgers must do is their
 * shared contract (`@realtime/server/testing`); failing open when Redis cannot be asked is in
 * `@realtime/redis` (`redis-connection-ledger.test.ts`).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryConnectionLedger } from "@realtime/server";
import { ConnectionLimits, connectionLedger } from "./connection-limits.ts";

const limitsOf = (perUser: number, perIp: number) =>
  new ConnectionLimits({
    perIp,
    ledger: perUser > 0 ? new MemoryConnectionLedger({ max: perUser }) : null,
  });

describe("ConnectionLimits", () => {
  it("counts per user and per IP; a release frees one slot, once", async () => {
    const limits = limitsOf(2, 3);
    const first = await limits.acquire("u1", "10.0.0.1");
    const second = await limits.acquire("u1", "10.0.0.2");
    assert.equal(typeof first, "function");
    assert.equal(await limits.acquire("u1", "10.0.0.3"), "per_user_limit");
    assert.equal(limits.ipCount("10.0.0.3"), 0, "a refusal holds no slot");
    (first as () => void)();
    (first as () => void)();
    assert.equal(limits.userCount("u1"), 1);
    assert.equal(limits.ipCount("10.0.0.1"), 0);
    assert.equal(typeof (await limits.acquire("u1", "10.0.0.1")), "function");
    assert.equal(typeof second, "function");
    limits.close();
  });

  it("concurrent opens cannot all slip under the cap", async () => {
    const limits = limitsOf(0, 3);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => limits.acquire("u", "10.0.0.9")),
    );
    assert.equal(results.filter((r) => typeof r === "function").length, 3);
    assert.equal(results.filter((r) => r === "per_ip_limit").length, 7);
    limits.close();
  });

  it("takes no ledger when the per-user cap is off, and one in memory without Redis", () => {
    const config = { perUser: 0, perIp: 0, leaseTtlMs: 30_000 };
    assert.equal(connectionLedger(config, null, { prefix: "t" }), null);
    const ledger = connectionLedger({ ...config, perUser: 2 }, null, { prefix: "t" });
    assert.ok(ledger instanceof MemoryConnectionLedger);
  });
});
