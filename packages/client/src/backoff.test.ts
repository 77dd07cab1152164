import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff.ts";

describe("backoffDelay", () => {
  it("is 1 s doubling to a 30 s cap, scaled by the jitter", () => {
    const ceilings = Array.from({ length: 9 }, (_, attempt) => backoffDelay(attempt, () => 0.5));
    assert.deepEqual(ceilings, [500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000, 15_000]);
  });

  it("spreads delays over the whole window (full jitter), never reaching the ceiling", () => {
    assert.equal(
      backoffDelay(3, () => 0),
      0,
    );
    assert.equal(
      backoffDelay(3, () => 0.25),
      2000,
    );
    assert.equal(
      backoffDelay(3, () => 0.999_999),
      7999,
    );
    assert.equal(
      backoffDelay(40, () => 0.999_999),
      29_999,
    );
  });

  it("clamps a faulty random source into the window", () => {
    assert.equal(
      backoffDelay(0, () => -3),
      0,
    );
    assert.equal(
      backoffDelay(0, () => 7),
      999,
    );
    assert.equal(
      backoffDelay(0, () => Number.NaN),
      999,
      "the safe end, not a tight loop",
    );
  });

  it("survives absurd attempt counts", () => {
    assert.equal(
      backoffDelay(5000, () => 0.5),
      15_000,
    );
    assert.equal(
      backoffDelay(-2, () => 0.5),
      500,
    );
  });

  it("takes other bases and caps", () => {
    assert.equal(
      backoffDelay(2, () => 0.5, { baseMs: 100, maxMs: 250 }),
      125,
    );
    assert.deepEqual(DEFAULT_BACKOFF, { baseMs: 1000, maxMs: 30_000 });
  });
});
