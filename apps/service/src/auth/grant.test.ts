import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createAuth } from "../auth.ts";
import { grants, MAX_GRANT_PATTERNS, parseGrant } from "./grant.ts";

describe("the realtime claim", () => {
  it("matches exact names and trailing-* prefixes, per action", () => {
    const grant = { subscribe: ["channel:team-42-*", "channel:lobby"], publish: ["channel:lobby"] };
    assert.equal(grants(grant, "subscribe", "channel:team-42-chat"), true);
    assert.equal(grants(grant, "subscribe", "channel:team-42-"), true);
    assert.equal(grants(grant, "subscribe", "channel:team-421"), false);
    assert.equal(grants(grant, "subscribe", "channel:lobby"), true);
    assert.equal(grants(grant, "subscribe", "channel:lobby2"), false);
    assert.equal(grants(grant, "publish", "channel:team-42-chat"), false);
    assert.equal(grants(grant, "publish", "channel:lobby"), true);
    assert.equal(grants({ subscribe: ["*"], publish: [] }, "subscribe", "channel:x"), true);
  });

  it("absent is no claim; present but malformed is invalid, never 'no claim'", () => {
    assert.equal(parseGrant(undefined), undefined);
    assert.deepEqual(parseGrant({}), { subscribe: [], publish: [] });
    assert.deepEqual(parseGrant({ subscribe: ["channel:a"] }), {
      subscribe: ["channel:a"],
      publish: [],
    });
    for (const bad of [
      null,
      "channel:a",
      ["channel:a"],
      { subscribe: "channel:a" },
      { subscribe: [1] },
      { subscribe: [""] },
      { subscribe: ["channel:*a"] },
      { subscribe: ["chan nel"] },
      { subscribe: ["channel:a"], admin: true },
      { subscribe: Array.from({ length: MAX_GRANT_PATTERNS + 1 }, (_, i) => `channel:${i}`) },
    ]) {
      assert.equal(parseGrant(bad), null, JSON.stringify(bad));
    }
  });

  it("a token with a malformed claim is refused (401), one with a good claim carries it", async () => {
    const auth = createAuth({
      secret: "grant-test-secret-grant-test-secret-0123",
      issuer: "realtime",
      audience: "realtime",
      tokenTtlSeconds: 60,
      cookieName: "rt_session",
    });
    const grant = { subscribe: ["channel:a-*"], publish: [] };
    const token = await auth.issueUserToken({ id: "u_1", name: "Ada", grant });
    const identity = await auth.verify(token);
    assert.deepEqual(identity.grant, grant);
    await assert.rejects(
      auth.issueUserToken({ id: "u_1", name: "Ada", grant: { subscribe: [""], publish: [] } }),
      TypeError,
    );
    // Signed by us with a bad claim (as another issuer sharing the secret might): refused.
    const { SignJWT } = await import("jose");
    const forged = await new SignJWT({ name: "Ada", realtime: { subscribe: "channel:a" } })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("u_1")
      .setIssuer("realtime")
      .setAudience("realtime")
      .setExpirationTime("1m")
      .sign(new TextEncoder().encode("grant-test-secret-grant-test-secret-0123"));
    await assert.rejects(auth.verify(forged), { code: "RT_ERR_UNAUTHORIZED" });
  });
});
