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

  it("hides anything shaped like a JWT, wherever it is in the URL", () => {
    const jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1XzEyMyIsIm5hbWUiOiJBZGEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    const cases: [string, string][] = [
      [`/x?t=${jwt}`, "/x?t=[redacted]"],
      [`/x?bearer=${jwt}&a=1`, "/x?bearer=[redacted]&a=1"],
      [`/x?channel=${jwt}`, "/x?channel=[redacted]"],
      [`/x?lastEventId=${jwt}`, "/x?lastEventId=[redacted]"],
      [`/x?${jwt}`, "/x?[redacted]"],
      [`/x?a=1&${jwt}=1`, "/x?a=1&[redacted]=1"],
      [`/api/media/${jwt}`, "/api/media/[redacted]"],
      [`/a/${jwt}/b?c=d`, "/a/[redacted]/b?c=d"],
      [`/x?q=Bearer%20${jwt}`, "/x?q=Bearer%20[redacted]"],
      // Percent-encoded dots, an unsigned token (alg: none), a JWE's five segments.
      [`/x?q=${jwt.replaceAll(".", "%2E")}`, "/x?q=[redacted]"],
      [`/x?q=${jwt.slice(0, jwt.lastIndexOf(".") + 1)}`, "/x?q=[redacted]"],
      [`/x?q=${jwt}.${"A".repeat(20)}.${"B".repeat(22)}`, "/x?q=[redacted]"],
    ];
    for (const [url, logged] of cases) assert.equal(redactUrl(url), logged, url);
    // Cursors, channel names and ids are not tokens: left as they are.
    for (const url of [
      "/api/events?channel=channel:general&lastEventId=1.3fKq9aZx0.Zp01W2bQ4",
      "/api/media/job_0123456789abcdef01234567",
      "/x?q=eyJ.not.much",
      "/r/eyJ-room.notes",
    ]) {
      assert.equal(redactUrl(url), url, url);
    }
  });
});
