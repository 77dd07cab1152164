import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  isChannelName,
  MAX_CHANNEL_ID_LENGTH,
  MAX_CHANNEL_NAME_LENGTH,
  parseChannel,
  printable,
  roomChannel,
  userChannel,
  validateChannelId,
} from "./channel.ts";

const id128 = "a".repeat(128);
const id129 = "a".repeat(129);

/** A test name that shows invisible and non-ASCII characters as escapes. */
function show(value: string): string {
  return JSON.stringify(value.slice(0, 40)).replace(
    /[^ -~]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

describe("limits", () => {
  it("are 128 for the id and 136 for the name", () => {
    assert.equal(MAX_CHANNEL_ID_LENGTH, 128);
    assert.equal(MAX_CHANNEL_NAME_LENGTH, "channel:".length + 128);
  });
});

describe("parseChannel", () => {
  const valid: ReadonlyArray<readonly [string, "user" | "channel", string]> = [
    ["user:u_42", "user", "u_42"],
    ["channel:general", "channel", "general"],
    ["channel:a", "channel", "a"],
    ["channel:0", "channel", "0"],
    ["channel:_x", "channel", "_x"],
    ["channel:A.b-c~d@e_F", "channel", "A.b-c~d@e_F"],
    ["user:jane@example.com", "user", "jane@example.com"],
    ["channel:a..b", "channel", "a..b"],
    [`user:${id128}`, "user", id128],
    [`channel:${id128}`, "channel", id128],
  ];
  for (const [name, kind, id] of valid) {
    it(`accepts ${show(name)}`, () => {
      assert.deepEqual(parseChannel(name), { ok: true, channel: { name, kind, id } });
      assert.equal(isChannelName(name), true);
    });
  }

  // [name, a fragment of the reason]
  const invalid: ReadonlyArray<readonly [string, string]> = [
    ["", "needs a prefix"],
    ["general", "needs a prefix"],
    ["user", "needs a prefix"],
    ["user:", "id is empty"],
    ["channel:", "id is empty"],
    [":x", 'unknown channel prefix ""'],
    ["User:x", 'unknown channel prefix "User"'],
    ["CHANNEL:x", "unknown channel prefix"],
    ["users:x", "unknown channel prefix"],
    ["room:x", "unknown channel prefix"],
    [" channel:x", "unknown channel prefix"],
    ["сhannel:x", "unknown channel prefix"], // Cyrillic с
    [`user:${id129}`, "id is longer than 128"],
    [`channel:${id129}`, "channel is longer than 136"],
    ["channel:a:b", "character outside"],
    ["user:channel:x", "character outside"],
    ["channel:{tag}", "character outside"],
    ["channel:a{b}", "character outside"],
    ["channel:%20", "character outside"],
    ["channel:a%2Fb", "character outside"],
    ["channel:../", "character outside"],
    ["channel:..", "character outside"],
    ["channel:.hidden", "character outside"],
    ["channel:-x", "character outside"],
    ["channel:~x", "character outside"],
    ["channel:@x", "character outside"],
    ["channel:a/b", "character outside"],
    ["channel:a\\b", "character outside"],
    ["channel:a*", "character outside"],
    ["channel:a?b", "character outside"],
    ["channel:a#b", "character outside"],
    ["channel:a+b", "character outside"],
    ["channel:a b", "character outside"],
    ["channel:a\tb", "character outside"],
    ["channel: a", "character outside"],
    ["channel:a ", "character outside"],
    ["channel:a\n", "character outside"],
    ["channel:a\r\n", "character outside"],
    ["channel:\u0000", "character outside"],
    ["channel:a\u0000", "character outside"],
    ["channel:a\u001f", "character outside"],
    ["channel:a\u007f", "character outside"],
    ["channel:a\u0085", "character outside"],
    ["channel:a\u00a0", "character outside"],
    ["channel:a\u200bb", "character outside"],
    ["channel:a\u2028", "character outside"],
    ["channel:a\uFEFF", "character outside"],
    ["channel:gеneral", "character outside"], // Cyrillic е
    ["channel:ａ", "character outside"], // fullwidth a
    ["channel:é", "character outside"],
    ["channel:👋", "character outside"],
    ["channel:a\u0301", "character outside"],
  ];
  for (const [name, reason] of invalid) {
    it(`refuses ${show(name)}`, () => {
      const result = parseChannel(name);
      assert.equal(result.ok, false);
      if (!result.ok) assert.ok(result.reason.includes(reason), result.reason);
      assert.equal(isChannelName(name), false);
    });
  }

  it("does not echo control characters in the reason", () => {
    const result = parseChannel("\u0000bad\u001b[31m\u202e:x");
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.reason, 'unknown channel prefix "?bad?[31m?"');
  });

  it("isChannelName refuses non-strings", () => {
    for (const value of [undefined, null, 42, {}, ["channel:a"], Symbol("channel:a")]) {
      assert.equal(isChannelName(value), false);
    }
  });
});

describe("validateChannelId", () => {
  it("accepts 128 characters and refuses 129", () => {
    assert.equal(validateChannelId(id128), null);
    assert.equal(validateChannelId(id129), "id is longer than 128");
  });

  it("refuses the empty id", () => assert.equal(validateChannelId(""), "id is empty"));
});

describe("roomChannel", () => {
  const accepted: ReadonlyArray<readonly [string, string]> = [
    ["general", "channel:general"],
    ["channel:general", "channel:general"],
    ["a.b-c", "channel:a.b-c"],
    [id128, `channel:${id128}`],
    [`channel:${id128}`, `channel:${id128}`],
  ];
  for (const [input, name] of accepted) {
    it(`accepts ${show(input)}`, () => {
      const result = roomChannel(input);
      assert.ok(result.ok);
      assert.equal(result.channel.name, name);
      assert.equal(result.channel.kind, "channel");
    });
  }

  const refused: ReadonlyArray<readonly [string, string]> = [
    ["user:u1", "a room must be a channel:<id>"],
    ["", "id is empty"],
    ["channel:", "id is empty"],
    ["User:x", "unknown channel prefix"],
    ["a:b", "unknown channel prefix"],
    ["channel:a:b", "character outside"],
    ["../x", "character outside"],
    ["a b", "character outside"],
    ["a\u0000", "character outside"],
    [id129, "longer"],
  ];
  for (const [input, reason] of refused) {
    it(`refuses ${show(input)}`, () => {
      const result = roomChannel(input);
      assert.equal(result.ok, false);
      if (!result.ok) assert.ok(result.reason.includes(reason), result.reason);
    });
  }
});

describe("userChannel", () => {
  it("makes user:<id>", () => {
    assert.equal(userChannel("u_42"), "user:u_42");
    assert.equal(userChannel(id128), `user:${id128}`);
  });

  for (const bad of ["", "a b", "a:b", "user:x", "../x", "{x}", "a\u0000", "a\n", "é", id129]) {
    it(`throws on ${show(bad)}`, () => {
      assert.throws(() => userChannel(bad), TypeError);
    });
  }
});

describe("printable", () => {
  const table: ReadonlyArray<readonly [string, string, string]> = [
    ["plain text", "plain", "plain"],
    ["the empty string", "", ""],
    ["C0, DEL and C1 controls", "a\u0000b\u001fc\u007fd\u0085e\u009ff", "a?b?c?d?e?f"],
    ["tab, LF and CR", "tab\tnew\nline\rcr", "tab?new?line?cr"],
    ["a terminal escape", "\u001b[31mred", "?[31mred"],
    ["bidi overrides", "bidi\u202eevil\u2066", "bidi?evil?"],
    ["zero-width space and BOM", "zero\u200bwidth\uFEFF", "zero?width?"],
    ["line and paragraph separators", "line\u2028para\u2029", "line?para?"],
    ["lone surrogates", "lone \ud800 high, lone \udc00 low", "lone ? high, lone ? low"],
    ["accents and emoji", "émoji 👋🏽 kept", "émoji 👋🏽 kept"],
  ];
  for (const [name, input, expected] of table) {
    it(`handles ${name}`, () => assert.equal(printable(input), expected));
  }

  it("cuts after 40 characters with an ellipsis", () => {
    assert.equal(printable("x".repeat(40)), "x".repeat(40));
    assert.equal(printable("x".repeat(41)), `${"x".repeat(40)}…`);
    assert.equal(printable("abcdef", 3), "abc…");
  });

  it("never cuts a surrogate pair in half", () => {
    const out = printable(`${"x".repeat(39)}👋 tail`);
    assert.equal(out, `${"x".repeat(39)}…`);
    assert.ok(out.isWellFormed());
    assert.equal(printable(`${"x".repeat(38)}👋 tail`), `${"x".repeat(38)}👋…`);
  });
});
