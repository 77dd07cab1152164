/** AuthzClient against a real HTTP backend: answers, cache, shared questions, bounded concurrency. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startAuthz, type TestAuthz } from "@realtime/testkit/authz";
import { AuthzClient, type AuthzResult } from "./authz.ts";

describe("AuthzClient", () => {
  let backend: TestAuthz;
  before(async () => {
    backend = await startAuthz();
  });
  after(() => backend.stop());

  const client = (overrides: Partial<ConstructorParameters<typeof AuthzClient>[0]> = {}) => {
    const counted: AuthzResult[] = [];
    const authz = new AuthzClient({
      url: backend.url,
      cacheMs: 60_000,
      timeoutMs: 300,
      maxConcurrency: 4,
      metrics: { authzRequest: (r) => counted.push(r), grantRevoked() {} },
      ...overrides,
    });
    return { authz, counted };
  };

  it("maps 2xx, 403, 404, 500 and no answer to allow, deny, no_rule, error, timeout", async () => {
    const { authz, counted } = client();
    const cases: [number | "hang", AuthzResult][] = [
      [204, "allow"],
      [403, "deny"],
      [404, "no_rule"],
      [500, "error"],
      ["hang", "timeout"],
    ];
    for (const [answer, expected] of cases) {
      backend.set("u_map", `channel:${answer}`, "subscribe", answer);
      const result = await authz.ask({
        userId: "u_map",
        channel: `channel:${answer}`,
        action: "subscribe",
      });
      assert.equal(result, expected, `answer ${answer}`);
    }
    assert.deepEqual(counted, ["allow", "deny", "no_rule", "error", "timeout"]);
  });

  it("a closed port is an error, not a throw", async () => {
    const { authz } = client({ url: "http://127.0.0.1:1/authorize" });
    assert.equal(
      await authz.ask({ userId: "u", channel: "channel:x", action: "publish" }),
      "error",
    );
  });

  it("caches answers per user, channel and action, and shares a question asked twice at once", async () => {
    const { authz } = client();
    backend.set("u_cache", "channel:c", "subscribe", 200);
    const question = { userId: "u_cache", channel: "channel:c", action: "subscribe" } as const;
    const before = backend.asked.length;
    const answers = await Promise.all(Array.from({ length: 20 }, () => authz.ask(question)));
    assert.ok(answers.every((a) => a === "allow"));
    assert.equal(await authz.ask(question), "allow");
    assert.equal(backend.asked.length - before, 1);
    // Another action is another question.
    await authz.ask({ ...question, action: "publish" });
    assert.equal(backend.asked.length - before, 2);
  });

  it("asks again once the cached answer expired (a withdrawn grant is seen)", async () => {
    let now = 1_000_000;
    const { authz } = client({ cacheMs: 1_000, now: () => now });
    const question = { userId: "u_exp", channel: "channel:e", action: "subscribe" } as const;
    backend.set("u_exp", "channel:e", "subscribe", 200);
    assert.equal(await authz.ask(question), "allow");
    backend.set("u_exp", "channel:e", "subscribe", 403);
    assert.equal(await authz.ask(question), "allow");
    now += 1_001;
    assert.equal(await authz.ask(question), "deny");
  });

  it("never has more than maxConcurrency requests in flight; the rest wait inside their deadline", async () => {
    const { authz } = client({ maxConcurrency: 2, timeoutMs: 400 });
    for (let i = 0; i < 6; i++) backend.set("u_conc", `channel:h${i}`, "subscribe", "hang");
    const before = backend.asked.length;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        authz.ask({ userId: "u_conc", channel: `channel:h${i}`, action: "subscribe" }),
      ),
    );
    assert.ok(results.every((r) => r === "timeout"));
    // Two got a slot and hung until the deadline; the four waiting timed out without a request.
    assert.equal(backend.asked.length - before, 2);
  });
});
