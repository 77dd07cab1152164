import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { ExpiryQueue } from "./expiry-queue.ts";

/** A queue on a clock that moves with the mocked timers, and what it expired, in order. */
function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const expired: string[] = [];
  const queue = new ExpiryQueue<string>(Date.now, (item) => expired.push(item));
  t.after(() => queue.close());
  return { queue, expired, tick: (ms: number) => t.mock.timers.tick(ms) };
}

describe("ExpiryQueue", () => {
  it("expires each item at its deadline, in deadline order, whatever the order added", (t) => {
    const { queue, expired, tick } = setup(t);
    const deadlines = [700, 100, 400, 100, 900, 250, 399, 50];
    for (const [i, ms] of deadlines.entries()) queue.add(`i${i}@${ms}`, 1_000_000 + ms);
    for (let elapsed = 0; elapsed < 1_000; elapsed++) {
      tick(1);
      // Nothing expires before its deadline, everything at it.
      for (const item of expired) {
        const at = Number(item.split("@")[1]);
        assert.ok(at <= elapsed + 1, `${item} expired at ${elapsed + 1}`);
      }
      for (const [i, ms] of deadlines.entries()) {
        if (ms <= elapsed + 1) assert.ok(expired.includes(`i${i}@${ms}`), `i${i} due by ${ms}`);
      }
    }
    assert.deepEqual(
      expired.map((item) => Number(item.split("@")[1])),
      [...deadlines].sort((a, b) => a - b),
    );
    assert.equal(queue.size, 0);
  });

  it("never expires a removed item, and removing twice or after expiry is harmless", (t) => {
    const { queue, expired, tick } = setup(t);
    const removers = new Map<string, () => void>();
    for (let i = 0; i < 200; i++) {
      const name = `s${i}`;
      removers.set(name, queue.add(name, 1_000_000 + 1 + ((i * 37) % 500)));
    }
    // Remove every third, the earliest among them included (the armed one).
    const removed = new Set<string>();
    for (let i = 0; i < 200; i += 3) {
      removers.get(`s${i}`)?.();
      removers.get(`s${i}`)?.();
      removed.add(`s${i}`);
    }
    assert.equal(queue.size, 200 - removed.size);
    tick(600);
    assert.equal(expired.length, 200 - removed.size);
    for (const name of expired) assert.ok(!removed.has(name), `${name} was removed`);
    for (const remove of removers.values()) remove();
    assert.equal(queue.size, 0);
  });

  it("arms for an earlier deadline added after a later one", (t) => {
    const { queue, expired, tick } = setup(t);
    queue.add("late", 1_000_000 + 60_000);
    queue.add("soon", 1_000_000 + 10);
    tick(10);
    assert.deepEqual(expired, ["soon"]);
    tick(59_989);
    assert.deepEqual(expired, ["soon"]);
    tick(1);
    assert.deepEqual(expired, ["soon", "late"]);
  });

  it("expires a past deadline at the next timer turn, not at once", (t) => {
    const { queue, expired, tick } = setup(t);
    queue.add("past", 1_000_000 - 5_000);
    assert.deepEqual(expired, []);
    tick(0);
    assert.deepEqual(expired, ["past"]);
  });

  it("keeps a deadline beyond setTimeout's range, re-arming until it comes", (t) => {
    const { queue, expired, tick } = setup(t);
    const max = 2 ** 31 - 1;
    queue.add("far", 1_000_000 + max + 1_000);
    tick(max);
    assert.deepEqual(expired, [], "not at the capped timer");
    tick(999);
    assert.deepEqual(expired, []);
    tick(1);
    assert.deepEqual(expired, ["far"]);
  });

  it("expires what its timer was armed for even when the clock lags the timer", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const expired: string[] = [];
    const queue = new ExpiryQueue<string>(
      () => 1_000_000, // a clock that does not move: the timer alone says the time came
      (item) => expired.push(item),
    );
    queue.add("a", 1_000_000 + 1_500);
    queue.add("b", 1_000_000 + 1_501);
    t.mock.timers.tick(1_500);
    assert.deepEqual(expired, ["a"]);
    queue.close();
  });

  it("items added by an expiry callback are kept and expire in turn", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
    const expired: number[] = [];
    const queue = new ExpiryQueue<number>(Date.now, (n) => {
      expired.push(n);
      if (n < 5) queue.add(n + 1, Date.now() + 10);
    });
    queue.add(0, 10);
    for (let i = 0; i < 10; i++) t.mock.timers.tick(10);
    assert.deepEqual(expired, [0, 1, 2, 3, 4, 5]);
    queue.close();
  });

  it("after close, nothing expires, nothing is held and removers are harmless", (t) => {
    const { queue, expired, tick } = setup(t);
    const remove = queue.add("x", 1_000_000 + 10);
    queue.close();
    queue.add("y", 1_000_000 + 20);
    tick(100);
    assert.deepEqual(expired, []);
    remove();
    assert.equal(queue.size, 0, "added after close: not held");
  });
});
