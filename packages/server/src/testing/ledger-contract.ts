/**
 * The contract every {@link ConnectionLedger} must meet, as one shared suite: the memory
 * ledger runs it in `connection-ledger.test.ts`, the Redis ledger in `@realtime/redis`
 * (`redis-connection-ledger.int.test.ts`, which also covers what only it does: one cap over
 * every pod, and the count of a pod that died expiring).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConnectionLedger, Release } from "../connection-ledger.ts";

export interface LedgerFixture {
  /** A new ledger (a new pod) allowing `max` streams per user. */
  ledger(max: number): ConnectionLedger;
  teardown(): Promise<void>;
}

export function runConnectionLedgerContract(
  name: string,
  setup: () => Promise<LedgerFixture>,
): void {
  const withLedger = async (max: number, body: (ledger: ConnectionLedger) => Promise<void>) => {
    const fixture = await setup();
    const ledger = fixture.ledger(max);
    try {
      await body(ledger);
    } finally {
      ledger.close();
      await fixture.teardown();
    }
  };
  let n = 0;
  const user = () => `user_${process.pid}_${n++}`;
  const lease = (value: Release | null): Release => {
    assert.equal(typeof value, "function", "admitted");
    return value as Release;
  };

  describe(`${name}: ConnectionLedger contract`, () => {
    it("admits a user's streams up to the cap and refuses the next; a refusal holds nothing", () =>
      withLedger(2, async (ledger) => {
        const u = user();
        lease(await ledger.acquire(u));
        lease(await ledger.acquire(u));
        assert.equal(await ledger.acquire(u), null);
        assert.equal(ledger.count(u), 2);
      }));

    it("a release frees one slot, once", () =>
      withLedger(2, async (ledger) => {
        const u = user();
        const first = lease(await ledger.acquire(u));
        lease(await ledger.acquire(u));
        first();
        first();
        assert.equal(ledger.count(u), 1);
        lease(await ledger.acquire(u));
        assert.equal(await ledger.acquire(u), null, "the second release freed nothing more");
      }));

    it("counts each user on their own", () =>
      withLedger(1, async (ledger) => {
        const [u, v] = [user(), user()];
        lease(await ledger.acquire(u));
        assert.equal(await ledger.acquire(u), null);
        lease(await ledger.acquire(v));
        assert.equal(ledger.count(u), 1);
        assert.equal(ledger.count(v), 1);
      }));

    it("concurrent acquires cannot all slip under the cap", () =>
      withLedger(3, async (ledger) => {
        const u = user();
        const results = await Promise.all(Array.from({ length: 10 }, () => ledger.acquire(u)));
        assert.equal(results.filter((r) => r !== null).length, 3);
        assert.equal(ledger.count(u), 3);
      }));

    it("a user whose streams all closed holds no slot", () =>
      withLedger(2, async (ledger) => {
        const u = user();
        const leases = [lease(await ledger.acquire(u)), lease(await ledger.acquire(u))];
        for (const release of leases) release();
        assert.equal(ledger.count(u), 0);
        lease(await ledger.acquire(u));
        lease(await ledger.acquire(u));
      }));
  });
}
