import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { redactUrl } from "./log-redaction.ts";

describe("redactUrl", () => {
  it("hides the values of secret-looking query parameters, and only those", () => {
    assert.equal(redactUrl("/api/events"), "/api/events");
    assert.equal(
      redactUrl("/api/events?channel=channel:x&token=abc.def.ghi&lastEventId=1.x"),
      "/api/events?channel=channel:x&token=[redacted]&lastEventId=1.x",
    );
    for (const name of ["access_token", "JWT", "api_key", "password", "session", "sig", "auth"]) {
      assert.equal(redactUrl(`/x?${name}=s3cret`), `/x?${name}=[redacted]`, name);
    }
    assert.equal(redactUrl("/x?%74oken=s3cret"), "/x?%74oken=[redacted]", "an encoded name");
    assert.equal(redactUrl("/x?token"), "/x?token", "no value, nothing to hide");
    assert.equal(redactUrl("/x?%E0%A4%A=1&token=s"), "/x?%E0%A4%A=1&token=[redacted]");
  });
});
