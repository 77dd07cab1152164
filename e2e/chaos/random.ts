/**
 * The run's randomness: one seeded generator (xoroshiro128+, from `pure-rand`) split into
 * independent streams, one per decision-maker (the fault schedule, the publisher, each
 * subscriber, …). A stream's draws depend only on the seed and on its own earlier draws, never
 * on how the other components' callbacks interleaved, so a seed always gives the same fault
 * schedule and the same choices, whatever the machine's timing did to the rest.
 */
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { JumpableRandomGenerator } from "pure-rand/types/JumpableRandomGenerator";

export class Random {
  readonly #rng: JumpableRandomGenerator;

  constructor(rng: JumpableRandomGenerator) {
    this.#rng = rng;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return uniformInt(this.#rng, min, max);
  }

  /** A float in [0, 1). */
  float(): number {
    return uniformFloat64(this.#rng);
  }

  /** A float in [min, max). */
  between(min: number, max: number): number {
    return min + (max - min) * this.float();
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(0, items.length - 1)] as T;
  }
}

/**
 * Hands out independent streams of one seed, in a fixed order: each is the generator 2^64 draws
 * after the previous one (`jump`), so no two overlap within any run's length.
 */
export class RandomStreams {
  readonly #root: JumpableRandomGenerator;

  constructor(seed: number) {
    this.#root = xoroshiro128plus(seed);
  }

  next(): Random {
    const stream = this.#root.clone();
    this.#root.jump();
    return new Random(stream);
  }
}
