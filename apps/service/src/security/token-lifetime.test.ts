/**
 * Attacks on identity: keep streaming past the token's `exp`; reconnect with an expired token;
 * forge a token (`alg: none`, another algorithm, another key, another issuer or audience); claim
 * another user's identity through the query string or a header. Each is refused (401/400/403,
 * with its code, no stream bytes) or closed (`close` 3005 `token_expired` no later than `exp`)
 * while a well-behaved client on the same pod keeps its stream. The verifier's own unit tests
 * (every forged shape against `auth.verify`) are in ../auth.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ofType, openStream, postJson, refusal, type Stream, tokens } from "@realtime/testkit/http";
import { type RunningService, startService, TEST_SECRET } from "@realtime/testkit/service";
import { SignJWT } from "jose";

const HOUR = 3600_000;

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

function claims(overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: "u_forged",
    name: "Mallory",
    iss: "realtime",
    aud: "realtime",
    iat: now,
    exp: now + 600,
    ...overrides,
  };
}

function sign(alg: string, secret: string, overrides: Record<string, unknown> = {}) {
  return new SignJWT(claims(overrides))
    .setProtectedHeader({ alg })
    .sign(new TextEncoder().encode(secret));
}

describe("token lifetime and forged identities", () => {
  let svc: RunningService;
  let good: { token: string; user: { id: string } };
  let goodStream: Stream;

  before(async () => {
    svc = await startService();
    good = await svc.login("Good");
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:tokens`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  async function goodStillReceives(content: string): Promise<void> {
    const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "tokens",
      content,
    });
    assert.equal(posted.status, 204);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  const events = (token: string, query = "channel=channel:tokens", headers = {}) =>
    openStream(`${svc.url}/api/events?${query}`, { authorization: `Bearer ${token}`, ...headers });

  it("a stream is closed with 3005 token_expired no later than exp; the old token is then refused", async () => {
    // exp ≈ now + 1.5–2.5 s (exp has whole seconds).
    const issuer = tokens(() => Date.now() - HOUR + 2500);
    const token = await issuer.issueUserToken({ id: "u_shortlived", name: "Brief" });
    const exp = (await issuer.verify(token)).expiresAt;
    const stream = await events(token);
    assert.equal(stream.status, 200);
    const close = await stream.waitFor((e) => e.event === "close", 5000);
    const closedAt = Date.now();
    assert.ok(closedAt <= exp, `closed ${closedAt - exp} ms after exp`);
    const data = JSON.parse(close.data) as { code: number; reason: string };
    assert.equal(data.code, 3005);
    assert.equal(data.reason, "token_expired");
    await stream.ended;
    await goodStillReceives("after the expiry close");

    // Reconnecting with the same token after exp: 401, nothing streamed.
    const again = await events(token);
    assert.equal(again.status, 401);
    assert.equal((await refusal(again)).code, "RT_ERR_TOKEN_EXPIRED");
  });

  it("a token that expires within the close margin cannot open a stream (refresh first)", async () => {
    const token = await tokens(() => Date.now() - HOUR + 400).issueUserToken({
      id: "u_almost",
      name: "Late",
    });
    const stream = await events(token);
    assert.equal(stream.status, 401);
    assert.equal((await refusal(stream)).code, "RT_ERR_TOKEN_EXPIRED");
    await goodStillReceives("after the late token");
  });

  const forged: [string, () => Promise<string>][] = [
    ["alg none", async () => `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims())}.`],
    ["HS512 with the right secret", () => sign("HS512", TEST_SECRET)],
    ["HS384 with the right secret", () => sign("HS384", TEST_SECRET)],
    ["HS256 with another key", () => sign("HS256", "another-secret-another-secret-0123456")],
    ["wrong iss", () => sign("HS256", TEST_SECRET, { iss: "evil" })],
    ["wrong aud", () => sign("HS256", TEST_SECRET, { aud: "evil" })],
    ["no exp", () => sign("HS256", TEST_SECRET, { exp: undefined })],
    [
      "a tampered payload",
      async () => {
        const [head, , sig] = good.token.split(".");
        return `${head}.${b64url(claims({ sub: good.user.id }))}.${sig}`;
      },
    ],
  ];
  for (const [what, make] of forged) {
    it(`a token with ${what} → 401 RT_ERR_UNAUTHORIZED, no stream`, async () => {
      const stream = await events(await make());
      assert.equal(stream.status, 401);
      assert.match(String(stream.headers["content-type"]), /^application\/json/);
      assert.equal((await refusal(stream)).code, "RT_ERR_UNAUTHORIZED");
      const chat = await postJson(`${svc.url}/api/chat/messages`, await make(), {
        channel: "tokens",
        content: "forged",
      });
      assert.equal(chat.status, 401);
      await goodStillReceives(`after ${what}`);
    });
  }

  it("identity never comes from the query string or a header", async () => {
    const { token, user: mallory } = await svc.login("Mallory");
    // An unknown query parameter is refused outright.
    const byQuery = await events(token, `channel=user:${good.user.id}&user=${good.user.id}`);
    assert.equal(byQuery.status, 400);
    assert.equal((await refusal(byQuery)).code, "RT_ERR_BAD_REQUEST");
    // Headers naming someone else change nothing: the token's user is the user.
    const spoof = { "x-user-id": good.user.id, "x-forwarded-user": good.user.id };
    const byHeader = await events(token, `channel=user:${good.user.id}`, spoof);
    assert.equal(byHeader.status, 403);
    assert.equal((await refusal(byHeader)).code, "RT_ERR_CHANNEL_FORBIDDEN");
    const posted = await postJson(
      `${svc.url}/api/chat/messages`,
      token,
      { channel: "tokens", content: "who am I" },
      { headers: spoof },
    );
    assert.equal(posted.status, 204);
    const event = await goodStream.waitFor(
      (e) => ofType("chat")(e) && JSON.parse(e.data).content === "who am I",
    );
    assert.equal(JSON.parse(event.data).userId, mallory.id);
    // A body field naming a user is refused, not used.
    const byBody = await postJson(`${svc.url}/api/chat/messages`, token, {
      channel: "tokens",
      content: "x",
      userId: good.user.id,
    });
    assert.equal(byBody.status, 400);
  });
});
