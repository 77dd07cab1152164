import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode } from "@realtime/protocol";
import { type Decision, decide } from "./reconnect-policy.ts";

describe("decide", () => {
  it("retries a dropped connection", () => {
    assert.equal(decide({ kind: "transport" }), "retry");
  });

  const closes: ReadonlyArray<readonly [number, Decision]> = [
    [CloseCode.Shutdown, "retry"],
    [CloseCode.ServerError, "retry"],
    [CloseCode.TokenExpired, "refresh"],
    [CloseCode.Slow, "retry"],
    [CloseCode.InsufficientState, "retry"],
    [3499, "retry"], // unknown, transient range
    [CloseCode.BadRequest, "stop-channels"],
    [CloseCode.Unauthorized, "stop"],
    [CloseCode.Forbidden, "stop-channels"],
    [3777, "stop-channels"], // unknown, terminal range
    [3999, "stop-channels"],
    [1000, "retry"], // outside the protocol's ranges
    [4000, "retry"],
  ];
  for (const [code, decision] of closes) {
    it(`close ${code} → ${decision}`, () => {
      assert.equal(decide({ kind: "close", code, reason: "x" }), decision);
    });
  }

  const statuses: ReadonlyArray<readonly [number, Decision]> = [
    [400, "stop-channels"],
    [401, "refresh"],
    [403, "stop-channels"],
    [404, "stop"],
    [408, "retry"],
    [429, "retry"],
    [500, "retry"],
    [502, "retry"],
    [503, "retry"],
    [200, "retry"], // a 200 that was not an event stream (a proxy's page): transient
  ];
  for (const [status, decision] of statuses) {
    it(`HTTP ${status} → ${decision}`, () => {
      assert.equal(decide({ kind: "http", status }), decision);
    });
  }
});
