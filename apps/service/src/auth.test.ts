import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import fastifyCookie from "@fastify/cookie";
import { AJV_OPTIONS, registerErrorHandling } from "@realtime/fastify";
import { validateChannelId } from "@realtime/protocol";
import { AppError } from "@realtime/server";
import Fastify, { type FastifyInstance } from "fastify";
import { SignJWT } from "jose";
import {
  type AuthOptions,
  createAuth,
  credentialsOf,
  MAX_TOKEN_LENGTH,
  newUserId,
  tokenFromRequest,
} from "./auth.ts";
import { type Config, loadConfig } from "./config.ts";
import { registerAuthRoutes } from "./routes/auth.ts";

const SECRET = "test-secret-that-is-long-enough-0123456789";
const OPTIONS: AuthOptions = {
  secret: SECRET,
  issuer: "realtime",
  audience: "realtime",
  tokenTtlSeconds: 3600,
  cookieName: "rt_session",
};

/** Asserts that `promise` rejects with an AppError of `code` whose message omits `token`. */
async function assertAuthError(promise: Promise<unknown>, code: string, token?: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AppError, `expected AppError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, 401);
    if (token) assert.ok(!err.message.includes(token), "the message must not echo the token");
    return true;
  });
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

function claims(overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: "u_abc",
    name: "Ada",
    iss: "realtime",
    aud: "realtime",
    iat: now,
    exp: now + 60,
    ...overrides,
  };
}

describe("tokens", () => {
  const auth = createAuth(OPTIONS);

  test("user token round-trip", async () => {
    const before = Date.now();
    const token = await auth.issueUserToken({ id: "u_abc", name: "Ada" });
    const identity = await auth.verify(token);
    assert.equal(identity.kind, "user");
    assert.ok(identity.kind === "user");
    assert.equal(identity.userId, "u_abc");
    assert.equal(identity.userName, "Ada");
    // exp is whole seconds, so allow for the truncation.
    assert.ok(identity.expiresAt >= before - 1000 + 3600_000);
    assert.ok(identity.expiresAt <= Date.now() + 3600_000);
  });

  test("user token carries the expected claims", async () => {
    const token = await auth.issueUserToken({ id: "u_abc", name: "Ada" });
    const [header, payload] = token
      .split(".")
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
    assert.equal(header.alg, "HS256");
    assert.equal(payload.sub, "u_abc");
    assert.equal(payload.name, "Ada");
    assert.equal(payload.iss, "realtime");
    assert.equal(payload.aud, "realtime");
    assert.equal(payload.exp - payload.iat, 3600);
  });

  test("service token round-trip", async () => {
    const token = await auth.issueServiceToken({ service: "jobs", scopes: ["publish", "read"] });
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString());
    assert.equal(payload.sub, "svc:jobs");
    assert.equal(payload.scope, "publish read");
    const identity = await auth.verify(token);
    assert.deepEqual(
      { ...identity, expiresAt: 0 },
      {
        kind: "service",
        service: "jobs",
        scopes: ["publish", "read"],
        expiresAt: 0,
      },
    );
  });

  test("issuing refuses ids and names that would not round-trip", async () => {
    await assert.rejects(auth.issueUserToken({ id: "svc:jobs", name: "x" }), TypeError);
    await assert.rejects(auth.issueServiceToken({ service: "a b", scopes: [] }), TypeError);
    await assert.rejects(auth.issueServiceToken({ service: "a", scopes: ["x y"] }), TypeError);
  });

  test("expired token → RT_ERR_TOKEN_EXPIRED", async () => {
    const past = createAuth(OPTIONS, () => Date.now() - 2 * 3600_000);
    const token = await past.issueUserToken({ id: "u_abc", name: "Ada" });
    await assertAuthError(auth.verify(token), "RT_ERR_TOKEN_EXPIRED", token);
  });

  test("expired token signed with another key → RT_ERR_UNAUTHORIZED", async () => {
    const other = createAuth(
      { ...OPTIONS, secret: "x".repeat(40) },
      () => Date.now() - 2 * 3600_000,
    );
    const token = await other.issueUserToken({ id: "u_abc", name: "Ada" });
    await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
  });

  test("token signed with another key → 401", async () => {
    const other = createAuth({ ...OPTIONS, secret: "x".repeat(40) });
    const token = await other.issueUserToken({ id: "u_abc", name: "Ada" });
    await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
  });

  test("alg:none token → 401", async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims())}.`;
    await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
  });

  test("HS512 token with the same secret → 401", async () => {
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS512" })
      .sign(new TextEncoder().encode(SECRET));
    await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
  });

  test("a correctly signed HS256 token of the same shape verifies (control for the above)", async () => {
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(SECRET));
    assert.equal((await auth.verify(token)).kind, "user");
  });

  for (const [what, override] of [
    ["wrong iss", { iss: "someone-else" }],
    ["wrong aud", { aud: "someone-else" }],
    ["no exp", { exp: undefined }],
    ["no sub", { sub: undefined }],
    ["a sub that is not a channel id", { sub: "u abc" }],
    ["a user token without name", { name: undefined }],
  ] as const) {
    test(`${what} → 401`, async () => {
      const token = await new SignJWT(claims(override))
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode(SECRET));
      await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    });
  }

  test("garbage and oversized tokens → 401", async () => {
    await assertAuthError(auth.verify("not-a-jwt"), "RT_ERR_UNAUTHORIZED");
    await assertAuthError(auth.verify(""), "RT_ERR_UNAUTHORIZED");
    await assertAuthError(auth.verify("a".repeat(MAX_TOKEN_LENGTH + 1)), "RT_ERR_UNAUTHORIZED");
  });
});

describe("verified tokens are remembered", () => {
  /** Counts HMAC verifications (the real WebCrypto call runs; it is only counted). */
  function countVerifications(): { count: () => number; restore: () => void } {
    const subtle = globalThis.crypto.subtle;
    const original = subtle.verify;
    let calls = 0;
    subtle.verify = function (this: SubtleCrypto, ...args: Parameters<SubtleCrypto["verify"]>) {
      calls++;
      return original.apply(this, args);
    };
    const restore = () => {
      subtle.verify = original;
    };
    return { count: () => calls, restore };
  }

  test("the same token is checked once, and every caller gets the same identity", async () => {
    const auth = createAuth(OPTIONS);
    const token = await auth.issueUserToken({ id: "u_abc", name: "Ada" });
    const hmac = countVerifications();
    try {
      const first = await auth.verify(token);
      const again = await Promise.all([auth.verify(token), auth.verify(token)]);
      assert.deepEqual(again, [first, first]);
      assert.equal(hmac.count(), 1);
      // A different token (even for the same user) is checked on its own.
      await auth.verify(await auth.issueServiceToken({ service: "jobs", scopes: ["publish"] }));
      assert.equal(hmac.count(), 2);
    } finally {
      hmac.restore();
    }
  });

  test("a remembered token still expires at its exp, to the second", async () => {
    let now = Date.UTC(2026, 10, 28, 12, 0, 0, 250);
    const auth = createAuth({ ...OPTIONS, tokenTtlSeconds: 60 }, () => now);
    const token = await auth.issueUserToken({ id: "u_abc", name: "Ada" });
    const identity = await auth.verify(token);
    now = identity.expiresAt - 1;
    assert.equal(await auth.verify(token), identity, "valid until the last millisecond");
    now = identity.expiresAt;
    await assertAuthError(auth.verify(token), "RT_ERR_TOKEN_EXPIRED", token);
    await assertAuthError(auth.verify(token), "RT_ERR_TOKEN_EXPIRED", token);
  });

  test("a refused token is never remembered as good", async () => {
    const auth = createAuth(OPTIONS);
    const forged = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims())}.${"A".repeat(43)}`;
    await assertAuthError(auth.verify(forged), "RT_ERR_UNAUTHORIZED", forged);
    await assertAuthError(auth.verify(forged), "RT_ERR_UNAUTHORIZED", forged);
  });
});

describe("newUserId", () => {
  test("u_ + 12 base-62 characters, a valid channel id, unique", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = newUserId();
      assert.match(id, /^u_[0-9A-Za-z]{12}$/);
      assert.equal(validateChannelId(id), null);
      seen.add(id);
    }
    assert.equal(seen.size, 1000);
  });
});

describe("tokenFromRequest", () => {
  test("Bearer header, else the cookie, nothing else", () => {
    assert.equal(tokenFromRequest({ headers: { authorization: "Bearer abc" } }, "c"), "abc");
    assert.equal(tokenFromRequest({ headers: { authorization: "bearer  abc " } }, "c"), "abc");
    assert.equal(tokenFromRequest({ headers: {}, cookies: { c: "xyz" } }, "c"), "xyz");
    assert.equal(
      tokenFromRequest({ headers: { authorization: "Bearer abc" }, cookies: { c: "xyz" } }, "c"),
      "abc",
    );
    assert.equal(tokenFromRequest({ headers: { authorization: "Basic abc" } }, "c"), null);
    // An Authorization header that does not parse is refused, never replaced by the cookie.
    for (const authorization of ["Bearer a b", "Bearer", "Basic abc", ""]) {
      const request = { headers: { authorization }, cookies: { c: "xyz" } };
      assert.equal(tokenFromRequest(request, "c"), null, authorization);
      assert.deepEqual(credentialsOf(request, "c"), { kind: "malformed" }, authorization);
    }
    assert.deepEqual(credentialsOf({ headers: {}, cookies: { c: "xyz" } }, "c"), {
      kind: "cookie",
      token: "xyz",
    });
    assert.equal(tokenFromRequest({ headers: {}, cookies: { other: "xyz" } }, "c"), null);
    assert.equal(tokenFromRequest({ headers: {} }, "c"), null);
  });
});

describe("auth routes", () => {
  async function build(env: Record<string, string>) {
    const config = loadConfig({ JWT_SECRET: SECRET, ...env });
    const app = Fastify({ ajv: AJV_OPTIONS });
    registerErrorHandling(app);
    await app.register(fastifyCookie);
    const auth = createAuth(config.auth);
    registerAuthRoutes(app, { auth, config });
    // A protected route, to check where authenticate() looks for tokens.
    app.get("/protected", async (request) => auth.authenticate(request));
    await app.ready();
    return { app, auth, config };
  }

  let app: FastifyInstance;
  let config: Config;
  before(async () => {
    ({ app, config } = await build({ TOKEN_TTL_SECONDS: "600" }));
  });
  after(() => app.close());

  function devLogin(target: FastifyInstance, payload: unknown) {
    return target.inject({
      method: "POST",
      url: "/api/auth/dev-login",
      payload: payload as object,
    });
  }

  test("dev-login issues a token and an HttpOnly cookie", async () => {
    const res = await devLogin(app, { name: "Ada" });
    assert.equal(res.statusCode, 200);
    const body = res.json() as { token: string; user: { id: string; name: string } };
    assert.equal(body.user.name, "Ada");
    assert.match(body.user.id, /^u_[0-9A-Za-z]{12}$/);
    assert.equal(res.headers["cache-control"], "no-store");
    const setCookie = String(res.headers["set-cookie"]);
    assert.ok(setCookie.startsWith(`${config.auth.cookieName}=${body.token};`), setCookie);
    assert.match(setCookie, /; Max-Age=600(;|$)/);
    assert.match(setCookie, /; Path=\/(;|$)/);
    assert.match(setCookie, /; HttpOnly(;|$)/);
    assert.match(setCookie, /; SameSite=Lax(;|$)/);
    assert.doesNotMatch(setCookie, /Secure/, "no TLS configured: no Secure");
  });

  test("the cookie is Secure when TLS is configured", async () => {
    const tls = await build({ TLS_CERT: "/c.pem", TLS_KEY: "/k.pem" });
    try {
      const res = await devLogin(tls.app, { name: "Ada" });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["set-cookie"]), /; Secure(;|$)/);
    } finally {
      await tls.app.close();
    }
  });

  test("me works with the cookie and with Bearer", async () => {
    const login = (await devLogin(app, { name: "Ada" })).json() as { token: string; user: object };
    const byCookie = await app.inject({
      method: "GET",
      url: "/api/auth/me",
      cookies: { [config.auth.cookieName]: login.token },
    });
    assert.equal(byCookie.statusCode, 200);
    assert.deepEqual(byCookie.json(), { user: login.user });
    const byBearer = await app.inject({
      method: "GET",
      url: "/api/auth/me",
      headers: { authorization: `Bearer ${login.token}` },
    });
    assert.deepEqual(byBearer.json(), { user: login.user });
  });

  test("me without a token → 401 JSON", async () => {
    const res = await app.inject({ method: "GET", url: "/api/auth/me" });
    assert.equal(res.statusCode, 401);
    assert.equal((res.json() as { code: string }).code, "RT_ERR_UNAUTHORIZED");
  });

  test("me with a service token → 403", async () => {
    const { app: local, auth } = await build({});
    try {
      const token = await auth.issueServiceToken({ service: "jobs", scopes: ["publish"] });
      const res = await local.inject({
        method: "GET",
        url: "/api/auth/me",
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(res.statusCode, 403);
    } finally {
      await local.close();
    }
  });

  test("a token in the query string or another header is ignored", async () => {
    const { token } = (await devLogin(app, { name: "Ada" })).json() as { token: string };
    for (const request of [
      { url: `/protected?token=${token}` },
      { url: `/protected?access_token=${token}` },
      { url: "/protected", headers: { "x-auth-token": token } },
      { url: "/protected", headers: { "x-access-token": `Bearer ${token}` } },
    ]) {
      const res = await app.inject({ method: "GET", ...request });
      assert.equal(res.statusCode, 401, request.url);
    }
    const ok = await app.inject({
      method: "GET",
      url: "/protected",
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(ok.statusCode, 200);
  });

  test("logout → 204 and clears the cookie", async () => {
    const res = await app.inject({ method: "POST", url: "/api/auth/logout" });
    assert.equal(res.statusCode, 204);
    const setCookie = String(res.headers["set-cookie"]);
    assert.ok(setCookie.startsWith(`${config.auth.cookieName}=;`), setCookie);
    assert.match(setCookie, /Expires=Thu, 01 Jan 1970|Max-Age=0/);
    assert.match(setCookie, /; Path=\/(;|$)/);
  });

  for (const [what, payload] of [
    ["a newline", { name: "Ada\nLovelace" }],
    ["a control character", { name: "Ada\u0007" }],
    ["a bidi override", { name: "Ada\u202e" }],
    ["an empty name", { name: "" }],
    ["a blank name", { name: "   " }],
    ["a 41-character name", { name: "x".repeat(41) }],
    ["a number", { name: 42 }],
    ["an unknown field", { name: "Ada", admin: true }],
    ["no name", {}],
  ] as const) {
    test(`dev-login with ${what} → 400`, async () => {
      const res = await devLogin(app, payload);
      assert.equal(res.statusCode, 400, res.body);
      assert.equal((res.json() as { code: string }).code, "RT_ERR_BAD_REQUEST");
      assert.equal(res.headers["set-cookie"], undefined);
    });
  }

  test("a 40-character name is accepted", async () => {
    assert.equal((await devLogin(app, { name: "é".repeat(40) })).statusCode, 200);
  });

  test("dev-login disabled → 403, whatever the body", async () => {
    const prod = await build({ NODE_ENV: "production" });
    try {
      for (const payload of [{ name: "Ada" }, { bogus: 1 }]) {
        const res = await devLogin(prod.app, payload);
        assert.equal(res.statusCode, 403);
        assert.equal((res.json() as { code: string }).code, "RT_ERR_DEV_LOGIN_DISABLED");
        assert.equal(res.headers["set-cookie"], undefined);
      }
    } finally {
      await prod.app.close();
    }
  });
});
