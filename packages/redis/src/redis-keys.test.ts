import assert from "node:assert/strict";
import { test } from "node:test";
import {
  channelKeys,
  encodeFrame,
  idempotencyKey,
  keySlot,
  parseFrame,
  probeChannel,
} from "./redis-keys.ts";

test("all names of a channel carry the channel as one hash tag", () => {
  assert.deepEqual(channelKeys("realtime", "channel:general"), {
    pubsub: "realtime:{channel:general}",
    meta: "realtime:meta:{channel:general}",
    history: "realtime:history:{channel:general}",
  });
  assert.equal(channelKeys("rt", "user:u_1").pubsub, "rt:{user:u_1}");
  assert.equal(probeChannel("rt", "pod1"), "rt:{probe:pod1}");
  assert.equal(probeChannel("rt", "pod1", 2), "rt:{probe:pod1:2}");
});

test("frames round-trip, also when the data contains colons", () => {
  const frame = {
    epoch: "abc123xyz0",
    offset: 42,
    life: "0f3a9c21",
    data: '{"t":"a:b:c","u":"ü"}',
  };
  assert.equal(encodeFrame(frame), 'abc123xyz0:42:0f3a9c21:{"t":"a:b:c","u":"ü"}');
  const none = { publishedAt: undefined, requestId: undefined };
  assert.deepEqual(parseFrame(encodeFrame(frame)), { ...frame, ...none });
  assert.deepEqual(parseFrame("e:1:00000000:"), {
    epoch: "e",
    offset: 1,
    life: "00000000",
    data: "",
    ...none,
  });
});

test("a frame carries when it was published and by which request, colons and all", () => {
  const frame = {
    epoch: "abc123xyz0",
    offset: 7,
    life: "0f3a9c21",
    data: '{"type":"a"}',
    publishedAt: 1_733_333_333_333,
    requestId: "lb:7f3a-1.x_Y",
  };
  const text = encodeFrame(frame);
  assert.equal(text, 'abc123xyz0:7;1733333333333;lb%3A7f3a-1.x_Y:0f3a9c21:{"type":"a"}');
  assert.deepEqual(parseFrame(text), frame);
  const untraced = { ...frame, requestId: undefined };
  assert.deepEqual(parseFrame(encodeFrame(untraced)), untraced);
  // What a pod of the version before the trace parsed: the offset field must be a number, so
  // such a pod refuses a traced frame (and repairs from history) instead of delivering it.
  const before = /^[1-9][0-9]{0,15}$/;
  assert.equal(before.test(text.split(":")[1] ?? ""), false);
});

test("malformed frames are refused", () => {
  const malformed = ["", "abc", "e:1", ":1:x", "e::x", "e:0:x", "e:01:x", "e:-1:x", "e:1.5:x"];
  // The life is 8 lowercase hex digits; a frame without one (the format before lives) is refused.
  malformed.push("e:1:{}", "e:1:0f3a9c2:{}", "e:1:0F3A9C21:{}", "e:1:0f3a9c21{}", "e:1:0f3a9c21");
  // A trace is a time in ms and a plain token.
  malformed.push("e:1;:0f3a9c21:{}", "e:1;x:0f3a9c21:{}", "e:1;5;:0f3a9c21:{}");
  malformed.push(
    "e:1;5;a b:0f3a9c21:{}",
    "e:1;5;a;b:0f3a9c21:{}",
    "e:1;12345678901234567:0f3a9c21:{}",
  );
  for (const text of malformed) {
    assert.equal(parseFrame(text), null, JSON.stringify(text));
  }
});

test("keySlot is Redis Cluster's CRC16 slot with hash tags", () => {
  assert.equal(keySlot("123456789"), 0x31c3); // the CRC16/XMODEM check value
  assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
  assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
  assert.equal(keySlot("foo{}{bar}"), keySlot("foo{}{bar}")); // empty tag: whole key
  assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
  assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
  assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
  const keys = channelKeys("realtime", "user:u_1");
  assert.equal(keySlot(keys.meta), keySlot(keys.history));
  assert.equal(keySlot(keys.meta), keySlot(keys.pubsub));
  for (let i = 0; i < 1000; i++) {
    const slot = keySlot(`k${i}`);
    assert.ok(slot >= 0 && slot < 16384);
  }
});

test("an idempotency key lives in its channel's slot, whatever characters the key has", () => {
  const keys = channelKeys("realtime", "channel:general");
  assert.equal(
    idempotencyKey("realtime", "channel:general", "abc"),
    "realtime:idem:{channel:general}:abc",
  );
  for (const key of ["abc", "{other}", "}{", "a:b", "x{y}z", "🎉"]) {
    assert.equal(keySlot(idempotencyKey("realtime", "channel:general", key)), keySlot(keys.meta));
  }
});
