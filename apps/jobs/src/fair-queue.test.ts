/** The embedded job queue's order, without threads (embedded.test.ts runs it with renders). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FairQueue } from "./fair-queue.ts";

/** Takes every job, finishing each before the next (one render thread). */
function drainOneAtATime(queue: FairQueue<string>): string[] {
  const order: string[] = [];
  for (let next = queue.take(); next; next = queue.take()) {
    order.push(next.item);
    queue.done(next.user);
  }
  return order;
}

describe("FairQueue", () => {
  it("takes users in turns, a user's own jobs in order", () => {
    const queue = new FairQueue<string>();
    for (const [user, job] of [
      ["a", "a1"],
      ["a", "a2"],
      ["a", "a3"],
      ["b", "b1"],
      ["b", "b2"],
      ["c", "c1"],
    ]) {
      queue.push(user as string, job as string);
    }
    assert.equal(queue.size, 6);
    assert.deepEqual(drainOneAtATime(queue), ["a1", "b1", "c1", "a2", "b2", "a3"]);
    assert.equal(queue.size, 0);
  });

  it("with several threads, the user with fewer jobs running goes first", () => {
    const queue = new FairQueue<string>();
    for (const job of ["a1", "a2", "a3"]) queue.push("a", job);
    assert.equal(queue.take()?.item, "a1");
    queue.push("b", "b1");
    // a has one running, b none: b1 before a2, though a2 waited longer.
    assert.equal(queue.take()?.item, "b1");
    assert.equal(queue.take()?.item, "a2");
  });

  it("a stream of new users cannot starve a user waiting for a second turn", () => {
    const queue = new FairQueue<string>();
    queue.push("a", "a1");
    queue.push("a", "a2");
    const first = queue.take();
    assert.equal(first?.item, "a1");
    queue.push("b", "b1"); // arrived while a1 ran: a turn before a's second
    queue.done("a");
    const order: string[] = [];
    // One render thread; every time a job ends, a brand-new user submits one.
    for (let i = 0; i < 4; i++) {
      const next = queue.take();
      assert.ok(next);
      order.push(next.item);
      queue.push(`n${i}`, `n${i}`);
      queue.done(next.user);
    }
    assert.deepEqual(order, ["b1", "a2", "n0", "n1"]);
  });

  it("removes a waiting job, clears, and forgets idle users", () => {
    const queue = new FairQueue<string>();
    queue.push("a", "a1");
    queue.push("a", "a2");
    queue.push("b", "b1");
    assert.equal(
      queue.remove("a", (job) => job === "a2"),
      true,
    );
    assert.equal(
      queue.remove("a", (job) => job === "a2"),
      false,
    );
    assert.equal(queue.size, 2);
    const first = queue.take();
    assert.equal(first?.item, "a1");
    queue.clear();
    assert.equal(queue.size, 0);
    assert.equal(queue.take(), undefined);
    // a1 is still running until done(); a user served and idle is forgotten, so comes back new.
    queue.done("a");
    queue.push("c", "c1");
    queue.push("a", "a3");
    assert.deepEqual(drainOneAtATime(queue), ["c1", "a3"], "both new: the older job first");
  });
});
