import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode, CloseReason, shouldReconnect } from "./codes.ts";

describe("shouldReconnect", () => {
  const table: ReadonlyArray<readonly [number, boolean]> = [
    [3000, true],
    [3001, true],
    [3250, true],
    [3499, true],
    [3500, false],
    [3501, false],
    [3999, false],
    [2999, false],
    [4000, false],
    [1000, false],
    [1006, false],
    [0, false],
    [-3001, false],
    [Number.NaN, false],
    [Number.POSITIVE_INFINITY, false],
    [Number.NEGATIVE_INFINITY, false],
  ];
  for (const [code, expected] of table) {
    it(`${code} → ${expected}`, () => assert.equal(shouldReconnect(code), expected));
  }
});

describe("CloseCode", () => {
  // Written out so that renumbering a code across the 3500 line fails here, not in the field.
  const expected: Readonly<Record<keyof typeof CloseCode, readonly [number, string, boolean]>> = {
    Shutdown: [3001, "shutdown", true],
    ServerError: [3002, "server_error", true],
    TokenExpired: [3005, "token_expired", true],
    Slow: [3008, "slow", true],
    InsufficientState: [3010, "insufficient_state", true],
    BadRequest: [3500, "bad_request", false],
    Unauthorized: [3501, "unauthorized", false],
    Forbidden: [3503, "forbidden", false],
  };

  it("has exactly the documented codes", () => {
    assert.deepEqual(Object.keys(CloseCode).sort(), Object.keys(expected).sort());
  });

  for (const [name, code] of Object.entries(CloseCode)) {
    it(`${name} is ${code} with its reason and reconnect class`, () => {
      const row = expected[name as keyof typeof CloseCode];
      assert.deepEqual([code, CloseReason[code], shouldReconnect(code)], row);
    });
  }

  it("codes are unique integers in 3000–3999", () => {
    const codes = Object.values(CloseCode);
    assert.equal(new Set(codes).size, codes.length);
    for (const code of codes) assert.ok(Number.isInteger(code) && code >= 3000 && code <= 3999);
  });

  it("every code has a reason, and no reason lacks a code", () => {
    const codes = Object.values(CloseCode).map(String).sort();
    assert.deepEqual(Object.keys(CloseReason).sort(), codes);
    for (const code of Object.values(CloseCode)) {
      assert.match(CloseReason[code], /^[a-z]+(_[a-z]+)*$/, `reason of ${code}`);
    }
  });

  it("reasons are unique", () => {
    const reasons = Object.values(CloseReason);
    assert.equal(new Set(reasons).size, reasons.length);
  });
});
