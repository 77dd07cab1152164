import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ControlEvent,
  EVENT_TYPE_PATTERN,
  MAX_EVENT_BYTES,
  MAX_EVENT_DEPTH,
  nowTimestamp,
  validateEventInput,
  validateEventType,
} from "./event.ts";

/** A test name that shows invisible and non-ASCII characters as escapes. */
function show(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value.slice(0, 40)) : String(value);
  return text.replace(/[^ -~]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

describe("validateEventType", () => {
  const valid = [
    "chat",
    "a",
    "x9",
    "presence",
    "generation_progress",
    "job.done",
    "job-done",
    "a.b_c-d.9",
    "resets",
    "closed",
    "messages",
    "error_report",
    `a${"b".repeat(63)}`,
  ];
  for (const type of valid) {
    it(`accepts ${show(type)}`, () => assert.equal(validateEventType(type), null));
  }

  const pattern = "type must match ^[a-z][a-z0-9_.-]{0,63}$";
  const invalid: ReadonlyArray<readonly [unknown, string]> = [
    ["", pattern],
    [`a${"b".repeat(64)}`, pattern],
    ["Chat", pattern],
    ["CHAT", pattern],
    ["9chat", pattern],
    ["_chat", pattern],
    [".chat", pattern],
    ["-chat", pattern],
    [" chat", pattern],
    ["chat ", pattern],
    ["chat\n", pattern],
    ["chat\r\n", pattern],
    ["ch at", pattern],
    ["ch\tat", pattern],
    ["chat\u0000", pattern],
    ["chat\u007f", pattern],
    ["chat\u0085", pattern],
    ["chat\u2028", pattern],
    ["chat:x", pattern],
    ["chat/x", pattern],
    ["çhat", pattern],
    ["сhat", pattern], // Cyrillic с
    ["ｃhat", pattern], // fullwidth c
    [42, "type must be a string"],
    [null, "type must be a string"],
    [undefined, "type must be a string"],
    [["chat"], "type must be a string"],
    [{ type: "chat" }, "type must be a string"],
  ];
  for (const [type, reason] of invalid) {
    it(`refuses ${show(type)}`, () => assert.equal(validateEventType(type), reason));
  }

  for (const type of ["reset", "close", "message", "error", "open"]) {
    it(`reserves ${type}`, () => {
      assert.equal(validateEventType(type), `type "${type}" is reserved for control events`);
    });
  }

  it("reserves every control event name", () => {
    for (const name of Object.values(ControlEvent)) assert.notEqual(validateEventType(name), null);
  });

  it("the exported pattern is the one enforced", () => {
    assert.equal(EVENT_TYPE_PATTERN.test("chat"), true);
    assert.equal(EVENT_TYPE_PATTERN.test("Chat"), false);
  });
});

describe("envelope constants", () => {
  it("caps events at 16 KiB", () => assert.equal(MAX_EVENT_BYTES, 16_384));

  it("names the control events", () => {
    assert.deepEqual(ControlEvent, { Ready: "ready", Reset: "reset", Close: "close" });
  });
});

describe("nowTimestamp", () => {
  it("formats ISO-8601 UTC with milliseconds", () => {
    assert.equal(nowTimestamp(0), "1970-01-01T00:00:00.000Z");
    assert.equal(nowTimestamp(Date.UTC(2024, 1, 29, 23, 59, 59, 7)), "2024-02-29T23:59:59.007Z");
  });

  it("defaults to now", () => {
    const before = Date.now();
    const stamp = Date.parse(nowTimestamp());
    assert.ok(stamp >= before && stamp <= Date.now());
  });

  it("gives each millisecond its own stamp, also when asked again for an earlier one", () => {
    const t = Date.UTC(2026, 10, 28, 1, 2, 3, 4);
    assert.equal(nowTimestamp(t), "2026-11-28T01:02:03.004Z");
    assert.equal(nowTimestamp(t), "2026-11-28T01:02:03.004Z");
    assert.equal(nowTimestamp(t + 1), "2026-11-28T01:02:03.005Z");
    assert.equal(nowTimestamp(t), "2026-11-28T01:02:03.004Z");
  });
});

describe("validateEventInput", () => {
  it("accepts a small event with identifier fields", () => {
    assert.equal(
      validateEventInput({ type: "job_done", jobId: "j1", progress: 100, result: { a: [1] } }),
      null,
    );
  });
  for (const [name, input] of [
    ["null", null],
    ["an array", [{ type: "x" }]],
    ["a string", "x"],
    ["no type", { jobId: "j" }],
    ["a reserved type", { type: "reset" }],
    ["a server field", { type: "x", channel: "user:u_2" }],
    ["a timestamp", { type: "x", timestamp: "2020-01-01T00:00:00Z" }],
    ["a field with a newline", { type: "x", "a\nb": 1 }],
    ["a field with a dash", { type: "x", "a-b": 1 }],
    [
      "too many fields",
      Object.fromEntries([["type", "x"], ...Array.from({ length: 40 }, (_, i) => [`f${i}`, i])]),
    ],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.equal(typeof validateEventInput(input), "string");
    });
  }
});

describe("validateEventInput: nesting depth", () => {
  /** An event whose `data` nests `levels` containers; the event itself is one more. */
  const nested = (levels: number, wrap: (inner: unknown, level: number) => unknown) => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = wrap(value, i);
    return { type: "note", data: value };
  };
  const shapes = [
    ["arrays", (inner: unknown) => [inner]],
    ["objects", (inner: unknown) => ({ a: inner })],
    ["both, in turn", (inner: unknown, level: number) => (level % 2 ? [inner] : { a: inner })],
  ] as const;

  it("caps events at 32 levels, the event itself included", () => {
    assert.equal(MAX_EVENT_DEPTH, 32);
  });
  for (const [name, wrap] of shapes) {
    it(`accepts ${MAX_EVENT_DEPTH} levels of ${name}, refuses one more`, () => {
      assert.equal(validateEventInput(nested(MAX_EVENT_DEPTH - 1, wrap)), null);
      assert.match(String(validateEventInput(nested(MAX_EVENT_DEPTH, wrap))), /nested deeper/);
    });
  }
  it("refuses 100,000 levels without overflowing the stack (the check is iterative)", () => {
    const deep = JSON.parse(`{"type":"note","data":${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
    assert.match(String(validateEventInput(deep)), /nested deeper than 32/);
  });
  it("counts depth, not breadth: wide shallow values pass", () => {
    const wide = { type: "note", data: Array.from({ length: 1000 }, () => ({ a: [1, { b: 2 }] })) };
    assert.equal(validateEventInput(wide), null);
  });
});
