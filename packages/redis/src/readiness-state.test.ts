import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  INITIAL_READINESS,
  type Readiness,
  type ReadinessEvent,
  transition,
} from "./readiness-state.ts";

function run(events: readonly ReadinessEvent[], from: Readiness = INITIAL_READINESS) {
  let state = from;
  const effects: string[] = [];
  for (const event of events) {
    const next = transition(state, event);
    state = next.state;
    effects.push(...next.effects);
  }
  return { state, effects };
}

describe("broker readiness", () => {
  it("is ready once a confirmation of the current generation succeeds; again after a drop", () => {
    const first = run([{ type: "confirmed", generation: 0 }]);
    assert.equal(first.state.phase, "ready");
    assert.deepEqual(first.effects, ["ready"]);
    const again = run([{ type: "down" }, { type: "confirmed", generation: 1 }], first.state);
    assert.equal(again.state.phase, "ready");
    assert.deepEqual(again.effects, ["not-ready", "ready-again"]);
  });

  it("ignores a confirmation begun before a connection dropped", () => {
    const { state, effects } = run([{ type: "down" }, { type: "confirmed", generation: 0 }]);
    assert.equal(state.phase, "confirming");
    assert.equal(state.generation, 1);
    assert.deepEqual(effects, []); // not ready before: nothing to announce
  });

  it("replaces the connections after two timeouts in a row, and a confirmation resets the count", () => {
    assert.deepEqual(run([{ type: "timed-out" }]).effects, []);
    assert.deepEqual(run([{ type: "timed-out" }, { type: "timed-out" }]).effects, [
      "replace-connections",
    ]);
    const reset = run([
      { type: "timed-out" },
      { type: "confirmed", generation: 0 },
      { type: "timed-out" },
    ]);
    assert.deepEqual(reset.effects, ["ready"]);
    assert.equal(reset.state.timeouts, 1);
  });

  it("logs the first error of an outage only, and again after being ready", () => {
    const { effects } = run([
      { type: "error" },
      { type: "error" },
      { type: "confirmed", generation: 0 },
      { type: "down" },
      { type: "error" },
    ]);
    assert.deepEqual(effects, ["log-error", "ready", "not-ready", "log-error"]);
  });

  it("stays closed whatever happens", () => {
    const { state, effects } = run([
      { type: "close" },
      { type: "confirmed", generation: 0 },
      { type: "down" },
      { type: "error" },
      { type: "timed-out" },
      { type: "timed-out" },
    ]);
    assert.equal(state.phase, "closed");
    assert.deepEqual(effects, []);
  });
});
