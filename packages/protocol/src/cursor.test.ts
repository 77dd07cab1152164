import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  CURSOR_VERSION,
  channelTag,
  cursorEntry,
  decodeCursor,
  encodeCursor,
  epochTag,
  joinCursor,
  lookupCursor,
  MAX_CURSOR_ENTRIES,
  MAX_CURSOR_LENGTH,
  mergeCursor,
  type StreamPosition,
} from "./cursor.ts";

const CURSOR_ALPHABET = /^[0-9A-Za-z.]+$/;
const TAG_PAIR = "AbCdEfGh"; // a channel tag and an epoch tag, as they appear in an entry

/** Decodes and fails the test when the cursor is refused. */
function decoded(cursor: string) {
  const result = decodeCursor(cursor);
  assert.ok(result, `cursor refused: ${cursor}`);
  return result;
}

/** `count` entries with distinct channel tags. */
function distinctEntries(count: number): string[] {
  return Array.from({ length: count }, (_, i) =>
    cursorEntry(channelTag(`channel:${i}`) + epochTag("e"), i),
  );
}

describe("encodeCursor / decodeCursor", () => {
  const positions: Array<[string, StreamPosition]> = [
    ["user:u_42", { epoch: "e1", offset: 0 }],
    ["channel:general", { epoch: "e1", offset: 1 }],
    ["channel:jobs", { epoch: "2024-01-01T00:00:00Z", offset: 123_456_789 }],
    ["channel:big", { epoch: "x", offset: Number.MAX_SAFE_INTEGER }],
  ];

  it("round-trips every channel's position", () => {
    const cursor = encodeCursor(positions);
    assert.match(cursor, CURSOR_ALPHABET);
    const decodedCursor = decoded(cursor);
    assert.equal(decodedCursor.entries.size, positions.length);
    for (const [channel, { epoch, offset }] of positions) {
      assert.deepEqual(lookupCursor(decodedCursor, channel, epoch), { kind: "position", offset });
    }
  });

  it("encodes no channels as the bare version", () => {
    assert.equal(encodeCursor([]), CURSOR_VERSION);
    assert.equal(decoded(CURSOR_VERSION).entries.size, 0);
  });

  it("is what joinCursor makes of cursorEntry", () => {
    const entries = positions.map(([channel, { epoch, offset }]) =>
      cursorEntry(channelTag(channel) + epochTag(epoch), offset),
    );
    assert.equal(joinCursor(entries), encodeCursor(positions));
  });

  it("fits 8 channels at offsets up to 36^6-1 in 128 bytes of [0-9A-Za-z.]", () => {
    const eight = Array.from({ length: 8 }, (_, i): [string, StreamPosition] => [
      `channel:${"x".repeat(120)}${i}`,
      { epoch: `epoch-${i}-${"e".repeat(60)}`, offset: 36 ** 6 - 1 },
    ]);
    const cursor = encodeCursor(eight);
    assert.ok(new TextEncoder().encode(cursor).length <= 128, `${cursor.length} bytes`);
    assert.match(cursor, CURSOR_ALPHABET);
    assert.equal(decoded(cursor).entries.size, 8);
  });

  it("refuses offsets that would not decode to themselves", () => {
    for (const offset of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => cursorEntry(TAG_PAIR, offset), RangeError, String(offset));
      assert.throws(() => encodeCursor([["channel:a", { epoch: "e", offset }]]), RangeError);
    }
  });

  it("decodes MAX_CURSOR_ENTRIES entries and refuses one more", () => {
    assert.notEqual(decodeCursor(joinCursor(distinctEntries(MAX_CURSOR_ENTRIES))), null);
    assert.equal(decodeCursor(joinCursor(distinctEntries(MAX_CURSOR_ENTRIES + 1))), null);
  });

  it("decodes the longest cursor it can encode: every entry with the widest offset", () => {
    const widest = Array.from({ length: MAX_CURSOR_ENTRIES }, (_, i) =>
      cursorEntry(channelTag(`channel:${i}`) + epochTag("e"), Number.MAX_SAFE_INTEGER),
    );
    const cursor = joinCursor(widest);
    assert.equal(cursor.length, MAX_CURSOR_LENGTH);
    assert.equal(decoded(cursor).entries.size, MAX_CURSOR_ENTRIES);
    assert.equal(decodeCursor(`${cursor}0`), null, "one character longer is refused");
  });
});

describe("lookupCursor", () => {
  const cursor = decoded(
    encodeCursor([
      ["channel:a", { epoch: "e1", offset: 7 }],
      ["user:u", { epoch: "e2", offset: 0 }],
    ]),
  );

  it("finds a position in the current epoch", () => {
    assert.deepEqual(lookupCursor(cursor, "channel:a", "e1"), { kind: "position", offset: 7 });
    assert.deepEqual(lookupCursor(cursor, "user:u", "e2"), { kind: "position", offset: 0 });
  });

  it("reports a channel the cursor does not have as absent", () => {
    assert.deepEqual(lookupCursor(cursor, "channel:b", "e1"), { kind: "absent" });
  });

  it("reports a different epoch as epoch_changed", () => {
    assert.deepEqual(lookupCursor(cursor, "channel:a", "e2"), { kind: "epoch_changed" });
    assert.deepEqual(lookupCursor(cursor, "user:u", ""), { kind: "epoch_changed" });
  });
});

describe("mergeCursor", () => {
  const general = (offset: number, epoch = "e1") =>
    encodeCursor([["channel:general", { epoch, offset }]]);
  const stream = encodeCursor([
    ["user:u", { epoch: "e1", offset: 4 }],
    ["channel:general", { epoch: "e1", offset: 9 }],
    ["channel:jobs", { epoch: "e2", offset: 1 }],
  ]);

  it("replaces the entry of the same channel where it stands, keeping the others", () => {
    assert.equal(
      mergeCursor(stream, general(3, "e3")),
      encodeCursor([
        ["user:u", { epoch: "e1", offset: 4 }],
        ["channel:general", { epoch: "e3", offset: 3 }],
        ["channel:jobs", { epoch: "e2", offset: 1 }],
      ]),
    );
  });

  it("appends a channel the cursor does not have", () => {
    const base = encodeCursor([["user:u", { epoch: "e1", offset: 4 }]]);
    const merged = decoded(mergeCursor(base, general(7)));
    assert.deepEqual(lookupCursor(merged, "user:u", "e1"), { kind: "position", offset: 4 });
    assert.deepEqual(lookupCursor(merged, "channel:general", "e1"), {
      kind: "position",
      offset: 7,
    });
    assert.equal(merged.entries.size, 2);
  });

  it("merges every entry of a cursor with several", () => {
    const from = encodeCursor([
      ["channel:jobs", { epoch: "e2", offset: 0 }],
      ["channel:new", { epoch: "e9", offset: 5 }],
    ]);
    const merged = decoded(mergeCursor(stream, from));
    assert.equal(merged.entries.size, 4);
    assert.deepEqual(lookupCursor(merged, "channel:jobs", "e2"), { kind: "position", offset: 0 });
    assert.deepEqual(lookupCursor(merged, "channel:new", "e9"), { kind: "position", offset: 5 });
    assert.deepEqual(lookupCursor(merged, "channel:general", "e1"), {
      kind: "position",
      offset: 9,
    });
  });

  it("starts from nothing when there is no cursor yet, and leaves a cursor merged with nothing as it was", () => {
    assert.equal(mergeCursor(null, general(2)), general(2));
    assert.equal(mergeCursor(CURSOR_VERSION, general(2)), general(2));
    assert.equal(mergeCursor(stream, CURSOR_VERSION), stream);
  });

  it("returns a base that is not a cursor unchanged (the server answers it with resets)", () => {
    for (const garbage of ["", "2.abc", "1.short", `1.${TAG_PAIR}1.${TAG_PAIR}2`]) {
      assert.equal(mergeCursor(garbage, general(2)), garbage);
    }
  });

  it("throws a TypeError when what is merged in is not a cursor", () => {
    for (const garbage of ["", "nope", "2.AbCdEfGh1", `1.${TAG_PAIR}`]) {
      assert.throws(() => mergeCursor(stream, garbage), TypeError, garbage);
      assert.throws(() => mergeCursor(null, garbage), TypeError, garbage);
    }
  });

  it("stays within MAX_CURSOR_ENTRIES, dropping the base's oldest entries, never the merged ones", () => {
    const full = joinCursor(distinctEntries(MAX_CURSOR_ENTRIES));
    const from = joinCursor([
      cursorEntry(channelTag("channel:0") + epochTag("x"), 1),
      cursorEntry(channelTag("channel:extra1") + epochTag("x"), 2),
      cursorEntry(channelTag("channel:extra2") + epochTag("x"), 3),
    ]);
    const merged = decoded(mergeCursor(full, from));
    assert.equal(merged.entries.size, MAX_CURSOR_ENTRIES);
    // channel:0 is the base's oldest entry, but it is replaced, so it stays; 1 and 2 make room.
    assert.deepEqual(lookupCursor(merged, "channel:0", "x"), { kind: "position", offset: 1 });
    assert.deepEqual(lookupCursor(merged, "channel:extra1", "x"), { kind: "position", offset: 2 });
    assert.deepEqual(lookupCursor(merged, "channel:extra2", "x"), { kind: "position", offset: 3 });
    assert.deepEqual(lookupCursor(merged, "channel:1", "e"), { kind: "absent" });
    assert.deepEqual(lookupCursor(merged, "channel:2", "e"), { kind: "absent" });
    assert.deepEqual(lookupCursor(merged, "channel:3", "e"), { kind: "position", offset: 3 });
  });

  it("property: the merged cursor decodes, holds every entry of `from`, and the base's others", () => {
    const position = fc.record({
      channel: fc.constantFrom(...Array.from({ length: 20 }, (_, i) => `channel:${i}`)),
      epoch: fc.constantFrom("a", "b"),
      offset: fc.nat(10_000),
    });
    const list = fc.uniqueArray(position, { selector: (p) => p.channel, maxLength: 20 });
    const encode = (ps: { channel: string; epoch: string; offset: number }[]) =>
      encodeCursor(ps.map((p) => [p.channel, p] as const));
    fc.assert(
      fc.property(list, list, (base, from) => {
        const merged = decoded(mergeCursor(encode(base), encode(from)));
        for (const { channel, epoch, offset } of from) {
          assert.deepEqual(lookupCursor(merged, channel, epoch), { kind: "position", offset });
        }
        for (const { channel, epoch, offset } of base) {
          if (from.some((p) => p.channel === channel)) continue;
          assert.deepEqual(lookupCursor(merged, channel, epoch), { kind: "position", offset });
        }
        const channels = new Set([...base, ...from].map((p) => p.channel));
        assert.equal(merged.entries.size, channels.size);
      }),
      { numRuns: 300 },
    );
  });
});

describe("decodeCursor on garbage", () => {
  const entry = `${TAG_PAIR}1`;
  const garbage: ReadonlyArray<readonly [string, string]> = [
    ["empty", ""],
    ["other version", "2.xxx"],
    ["other version with a valid entry", `2.${entry}`],
    ["version 0", "0"],
    ["no version", entry],
    ["empty entry", "1."],
    ["two empty entries", "1.."],
    ["empty entry between valid ones", `1.${entry}..${entry}`],
    ["trailing dot", `1.${entry}.`],
    ["tags without offset", `1.${TAG_PAIR}`],
    ["short tags", "1.AbC1"],
    ["duplicated entry", `1.${entry}.${entry}`],
    ["same channel, other epoch", `1.${entry}.AbCdZZZZ2`],
    ["non-base62 tag", "1.AbC!EfGh1"],
    ["dash in tag", "1.AbC-EfGh1"],
    ["negative offset", `1.${TAG_PAIR}-1`],
    ["upper-case offset", `1.${TAG_PAIR}Z`],
    ["fractional offset", `1.${TAG_PAIR}1.5`],
    ["12-digit offset", `1.${TAG_PAIR}${"z".repeat(12)}`],
    ["11-digit offset past 2^53", `1.${TAG_PAIR}${"z".repeat(11)}`],
    ["2^53 in base 36", `1.${TAG_PAIR}${(2 ** 53).toString(36)}`],
    ["unicode in tag", "1.ÄbCdEfGh1"],
    ["fullwidth digit", `1.${TAG_PAIR}１`],
    ["emoji", `1.${TAG_PAIR}👋`],
    ["leading space", ` 1.${entry}`],
    ["trailing space", `1.${entry} `],
    ["trailing LF", `1.${entry}\n`],
    ["NUL", `1.${entry}\u0000`],
    ["10 kB", `1.${`${entry}.`.repeat(1000)}${entry}`],
    ["10 kB of dots", ".".repeat(10_000)],
    ["longer than MAX_CURSOR_LENGTH", `1.${TAG_PAIR}${"0".repeat(MAX_CURSOR_LENGTH)}`],
  ];
  for (const [name, text] of garbage) {
    it(`refuses ${name}`, () => assert.equal(decodeCursor(text), null));
  }

  it("accepts the largest safe offset", () => {
    const text = `1.${TAG_PAIR}${Number.MAX_SAFE_INTEGER.toString(36)}`;
    assert.equal(decoded(text).entries.get("AbCd")?.offset, Number.MAX_SAFE_INTEGER);
  });
});

describe("properties", () => {
  const cursorish = fc.string({
    unit: fc.constantFrom(..."0123456789abczABCZ.-Ä"),
    maxLength: 300,
  });
  const anything = fc.oneof(fc.string({ unit: "binary", maxLength: 2000 }), cursorish);

  it("decodeCursor never throws, and what it accepts is in the cursor alphabet", () => {
    fc.assert(
      fc.property(anything, (text) => {
        const result = decodeCursor(text);
        if (result !== null) {
          assert.match(text, /^1(\.[0-9A-Za-z]{8}[0-9a-z]{1,11})*$/);
          for (const { offset } of result.entries.values()) {
            assert.ok(Number.isSafeInteger(offset) && offset >= 0);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("round-trips any valid list of positions", () => {
    const position = fc.record({
      channel: fc.string({ unit: "binary", maxLength: 140 }),
      epoch: fc.string({ unit: "binary", maxLength: 40 }),
      offset: fc.oneof(fc.nat(1000), fc.maxSafeNat()),
    });
    // Channels whose tags collide cannot share a stream's cursor, so keep tags unique.
    const positions = fc.uniqueArray(position, {
      selector: (p) => channelTag(p.channel),
      maxLength: MAX_CURSOR_ENTRIES,
    });
    fc.assert(
      fc.property(positions, (list) => {
        const cursor = encodeCursor(list.map((p) => [p.channel, p] as const));
        assert.match(cursor, CURSOR_ALPHABET);
        const result = decoded(cursor);
        assert.equal(result.entries.size, list.length);
        for (const { channel, epoch, offset } of list) {
          assert.deepEqual(lookupCursor(result, channel, epoch), { kind: "position", offset });
        }
      }),
      { numRuns: 500 },
    );
  });
});
