import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import { PresenceIndex } from "./presence-index.ts";

const X = "channel:x" as ChannelName;
const Y = "channel:y" as ChannelName;

function recorder() {
  const calls: ChannelName[][] = [];
  let fail = false;
  return {
    calls,
    failNext() {
      fail = true;
    },
    register: async (channels: ChannelName[]) => {
      calls.push(channels);
      if (fail) {
        fail = false;
        throw new Error("down");
      }
    },
  };
}

describe("PresenceIndex", () => {
  it("registers a channel once, also for concurrent writers, and waits for it", async () => {
    const index = new PresenceIndex();
    const r = recorder();
    await Promise.all([index.ensure([X, Y, X], r.register), index.ensure([X], r.register)]);
    await index.ensure([Y], r.register);
    assert.deepEqual(r.calls, [[X, Y]]);
    assert.equal(index.size, 2);
  });

  it("forgets a failed registration so the next write retries it", async () => {
    const index = new PresenceIndex();
    const r = recorder();
    r.failNext();
    await assert.rejects(index.ensure([X], r.register));
    await index.ensure([X], r.register);
    assert.deepEqual(r.calls, [[X], [X]]);
  });

  it("releases a channel only once no stream, grace period or pin of the pod is left", async () => {
    const index = new PresenceIndex();
    const r = recorder();
    index.joining(X, "1");
    index.joining(X, "2");
    await index.ensure([X], r.register);
    index.left(X, "1");
    assert.deepEqual(index.release(), []);
    index.graceStarted(X, "t1");
    index.left(X, "2");
    assert.deepEqual(index.release(), [], "a grace period keeps it");
    index.pin(X);
    index.graceEnded(X, "t1");
    assert.deepEqual(index.release(), [], "a reap under way keeps it");
    index.unpin(X);
    assert.deepEqual(index.release(), [X]);
    assert.equal(index.size, 0);
    // Written to again: registered again.
    index.joining(X, "3");
    await index.ensure([X], r.register);
    assert.deepEqual(r.calls, [[X], [X]]);
  });

  it("clear() forgets everything (the store lost the pod's entries)", async () => {
    const index = new PresenceIndex();
    const r = recorder();
    index.joining(X, "1");
    await index.ensure([X], r.register);
    index.clear();
    assert.equal(index.size, 0);
    await index.ensure([X], r.register);
    assert.equal(r.calls.length, 2);
  });
});
