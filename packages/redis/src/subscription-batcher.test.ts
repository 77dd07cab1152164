import assert from "node:assert/strict";
import { test } from "node:test";
import { SubscriptionBatcher, type SubscriptionKind } from "./subscription-batcher.ts";

/** A batcher whose flushes and Redis replies the test drives by hand. */
function harness(timeoutMs = 60_000) {
  const sent: { kind: SubscriptionKind; channels: string[]; reply: PromiseWithResolvers<void> }[] =
    [];
  let pending: (() => void) | null = null;
  const batcher = new SubscriptionBatcher({
    timeoutMs,
    schedule: (flush) => {
      pending = flush;
    },
    send: (kind, channels) => {
      const reply = Promise.withResolvers<void>();
      sent.push({ kind, channels, reply });
      return reply.promise;
    },
  });
  const flush = () => {
    const run = pending;
    pending = null;
    run?.();
  };
  const commands = () => sent.map((s) => `${s.kind} ${s.channels.join(",")}`);
  return { batcher, sent, flush, commands };
}

/** Lets settled promises run their callbacks (no timers involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function state(promise: Promise<unknown>) {
  const s = { done: false, error: undefined as unknown };
  promise.then(
    () => {
      s.done = true;
    },
    (error) => {
      s.error = error;
    },
  );
  return s;
}

test("calls of one tick become one SUBSCRIBE, resolved only once Redis confirmed", async () => {
  const { batcher, sent, flush, commands } = harness();
  const a = state(batcher.subscribe("a"));
  const b = state(batcher.subscribe("b"));
  const again = state(batcher.subscribe("a"));
  flush();
  assert.deepEqual(commands(), ["subscribe a,b"]);
  await settle();
  assert.equal(a.done || b.done || again.done, false, "not before Redis answered");
  sent[0]?.reply.resolve();
  await settle();
  assert.ok(a.done && b.done && again.done);
  assert.deepEqual(batcher.active(), ["a", "b"]);
  assert.ok(batcher.wants("a"));
});

test("subscribing an already subscribed channel sends nothing and resolves", async () => {
  const { batcher, sent, flush, commands } = harness();
  const first = batcher.subscribe("a");
  flush();
  sent[0]?.reply.resolve();
  await first;
  const second = batcher.subscribe("a");
  flush();
  await second;
  assert.deepEqual(commands(), ["subscribe a"]);
});

test("a repeated subscribe waits for the SUBSCRIBE still in flight", async () => {
  const { batcher, sent, flush } = harness();
  void batcher.subscribe("a");
  flush();
  const later = state(batcher.subscribe("a"));
  flush();
  await settle();
  assert.equal(later.done, false);
  sent[0]?.reply.resolve();
  await settle();
  assert.equal(later.done, true);
});

test("subscribe and unsubscribe in one tick cancel out", async () => {
  const { batcher, flush, commands } = harness();
  const sub = batcher.subscribe("a");
  const unsub = batcher.unsubscribe("a");
  flush();
  await Promise.all([sub, unsub]);
  assert.deepEqual(commands(), []);
  assert.equal(batcher.wants("a"), false);
});

test("unsubscribe stops delivery at once, sends one UNSUBSCRIBE, and is idempotent", async () => {
  const { batcher, sent, flush, commands } = harness();
  const sub = batcher.subscribe("a");
  flush();
  sent[0]?.reply.resolve();
  await sub;
  const first = state(batcher.unsubscribe("a"));
  const second = state(batcher.unsubscribe("a"));
  assert.equal(batcher.wants("a"), false, "delivery stops before Redis answers");
  flush();
  assert.deepEqual(commands(), ["subscribe a", "unsubscribe a"]);
  sent[1]?.reply.resolve();
  await settle();
  assert.ok(first.done && second.done);
  await batcher.unsubscribe("never-subscribed");
  assert.deepEqual(batcher.active(), []);
});

test("a SUBSCRIBE that fails rejects its callers and is rolled back", async () => {
  const { batcher, sent, flush, commands } = harness();
  const sub = state(batcher.subscribe("a"));
  flush();
  sent[0]?.reply.reject(new Error("connection lost"));
  await settle();
  assert.match(String(sub.error), /connection lost/);
  assert.equal(batcher.wants("a"), false);
  flush();
  assert.deepEqual(commands(), ["subscribe a", "unsubscribe a"]);
});

test("a SUBSCRIBE Redis never answers times out and is rolled back", async () => {
  const { batcher, flush, commands } = harness(20);
  const sub = batcher.subscribe("a");
  flush();
  await assert.rejects(sub, /timed out/);
  assert.equal(batcher.wants("a"), false);
  flush();
  assert.deepEqual(commands(), ["subscribe a", "unsubscribe a"]);
});

test("close rejects pending subscribes and refuses new ones", async () => {
  const { batcher, flush } = harness();
  const sub = batcher.subscribe("a");
  flush();
  batcher.close();
  await assert.rejects(sub, /closed/);
  await assert.rejects(batcher.subscribe("b"), /closed/);
  await batcher.unsubscribe("a");
});
