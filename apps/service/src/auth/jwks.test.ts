/**
 * Tokens from an identity provider: RS256, ES256 and EdDSA checked against a JWKS served by a
 * real HTTP server on loopback (keys made with jose), through `createAuth(...).verify` and
 * through the service (`buildApp`, a listening pod). Rotation, the cache and the cooldown are
 * proved by counting the JWKS server's requests; the JWKS going down (refused connections, a
 * server that never answers) by stopping or stalling it.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { AppError } from "@realtime/server";
import { openStream, postJson, refusal } from "@realtime/testkit/http";
import { startService, TEST_SECRET } from "@realtime/testkit/service";
import {
  type CryptoKey,
  errors,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  SignJWT,
  UnsecuredJWT,
} from "jose";
import { buildApp } from "../app.ts";
import { type AuthOptions, createAuth } from "../auth.ts";
import type { JwksConfig, JwtAlgorithm } from "../config/auth.ts";
import { loadConfig } from "../config.ts";

const SECRET = "test-secret-that-is-long-enough-0123456789";
const BASE: AuthOptions = {
  secret: SECRET,
  issuer: "realtime",
  audience: "realtime",
  tokenTtlSeconds: 3600,
  cookieName: "rt_session",
};

type IdpAlgorithm = "RS256" | "ES256" | "EdDSA";

interface IdpKey {
  readonly alg: IdpAlgorithm;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public key as the JWKS serves it. */
  readonly jwk: JWK;
}

async function makeKey(alg: IdpAlgorithm, kid: string): Promise<IdpKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  // One key names its algorithm, as many providers do; the others leave it to the token.
  const jwk = { ...(await exportJWK(publicKey)), kid, use: "sig", ...(alg === "RS256" && { alg }) };
  return { alg, kid, privateKey, publicKey, jwk };
}

let serial = 0;

/** Claims in the service's shape; each token is distinct (`jti`), so none is served from the verified-token memory. */
function claims(overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: "u_idp",
    name: "Idp User",
    iss: "realtime",
    aud: "realtime",
    iat: now,
    exp: now + 600,
    jti: `t${++serial}`,
    ...overrides,
  };
}

function sign(key: IdpKey, overrides: Record<string, unknown> = {}, kid = key.kid) {
  return new SignJWT(claims(overrides))
    .setProtectedHeader({ alg: key.alg, kid, typ: "JWT" })
    .sign(key.privateKey);
}

interface JwksServer {
  readonly url: string;
  /** The served set: push or remove keys to rotate. */
  readonly keys: JWK[];
  /** Requests received so far (answered or held). */
  readonly requests: number;
  /** When the last request arrived (`Date.now()`). */
  readonly lastRequestAt: number;
  /** While true, requests are held and never answered. */
  hang: boolean;
  /** Stops listening and drops every connection, held requests included. */
  close(): Promise<void>;
}

async function startJwks(keys: readonly JWK[]): Promise<JwksServer> {
  const served = [...keys];
  let requests = 0;
  let lastRequestAt = 0;
  const server = http.createServer((_req, res) => {
    requests++;
    lastRequestAt = Date.now();
    if (state.hang) return;
    res.writeHead(200, { "content-type": "application/jwk-set+json" });
    res.end(JSON.stringify({ keys: served }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const state: JwksServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    keys: served,
    get requests() {
      return requests;
    },
    get lastRequestAt() {
      return lastRequestAt;
    },
    hang: false,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
  return state;
}

function jwksConfig(server: JwksServer, overrides: Partial<JwksConfig> = {}): JwksConfig {
  return {
    url: server.url,
    cacheMaxAgeMs: 600_000,
    cooldownMs: 60_000,
    timeoutMs: 5000,
    ...overrides,
  };
}

/** Asserts that `promise` rejects with a 401 AppError of `code` whose message omits `token`. */
async function assertAuthError(promise: Promise<unknown>, code: string, token: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AppError, `expected AppError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, 401);
    assert.ok(!err.message.includes(token), "the message must not echo the token");
    return true;
  });
}

/**
 * Waits until `cooldownMs` has passed since the JWKS server's last request. The duration is
 * what is under test (jose's cooldown runs on the wall clock); there is no event to await.
 */
async function cooldownOver(server: JwksServer, cooldownMs: number): Promise<void> {
  const left = server.lastRequestAt + cooldownMs + 20 - Date.now();
  if (left > 0) await delay(left);
}

describe("JWKS: tokens from an identity provider", () => {
  let rsa: IdpKey;
  let ec: IdpKey;
  let ed: IdpKey;
  /** Keys the identity provider never publishes. */
  let outsider: IdpKey;
  let outsiderEc: IdpKey;
  const servers: JwksServer[] = [];

  async function serve(keys: readonly JWK[]): Promise<JwksServer> {
    const server = await startJwks(keys);
    servers.push(server);
    return server;
  }

  before(async () => {
    [rsa, ec, ed, outsider, outsiderEc] = await Promise.all([
      makeKey("RS256", "rsa-1"),
      makeKey("ES256", "ec-1"),
      makeKey("EdDSA", "ed-1"),
      makeKey("RS256", "rsa-1"),
      makeKey("ES256", "ec-outside"),
    ]);
  });
  after(() => Promise.all(servers.map((s) => s.close())));

  test("RS256, ES256 and EdDSA tokens verify against one fetch of the set; HS256 keeps working", async () => {
    const server = await serve([rsa.jwk, ec.jwk, ed.jwk]);
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server) });
    for (const key of [rsa, ec, ed]) {
      const identity = await auth.verify(await sign(key, { sub: `u_${key.alg}`, name: key.alg }));
      assert.equal(identity.kind, "user");
      assert.ok(identity.kind === "user");
      assert.equal(identity.userId, `u_${key.alg}`);
      assert.equal(identity.userName, key.alg);
    }
    const service = await auth.verify(await sign(ec, { sub: "svc:idp-worker", scope: "publish" }));
    assert.deepEqual(
      { ...service, expiresAt: 0 },
      { kind: "service", service: "idp-worker", scopes: ["publish"], expiresAt: 0 },
    );
    assert.equal(server.requests, 1, "one fetch serves every key of the set");
    const own = await auth.issueUserToken({ id: "u_own", name: "Own" });
    assert.equal((await auth.verify(own)).kind, "user");
    assert.equal(server.requests, 1, "an HS256 token never touches the JWKS");
  });

  test("the same claim rules: iss, aud, exp, sub required, the realtime grant read; an expired genuine token is RT_ERR_TOKEN_EXPIRED", async () => {
    const server = await serve([rsa.jwk]);
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server) });
    const now = Math.floor(Date.now() / 1000);
    const expired = await sign(rsa, { iat: now - 7200, exp: now - 3600 });
    await assertAuthError(auth.verify(expired), "RT_ERR_TOKEN_EXPIRED", expired);
    for (const override of [
      { iss: "someone-else" },
      { aud: "someone-else" },
      { exp: undefined },
      { sub: undefined },
      { name: undefined },
      { realtime: { subscribe: "channel:*" } },
    ]) {
      const token = await sign(rsa, override);
      await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    }
    assert.equal((await auth.verify(await sign(rsa))).kind, "user", "control");
    // The `realtime` grant claim is read from a provider's token as from ours.
    const realtime = { subscribe: ["channel:idp-*"], publish: [] };
    const granted = await auth.verify(await sign(rsa, { realtime }));
    assert.deepEqual(granted.grant, realtime);
  });

  test("rotation: a new kid in the set verifies without a restart; a known kid fetches nothing", async () => {
    const cooldownMs = 1000;
    const server = await serve([rsa.jwk]);
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server, { cooldownMs }) });
    await auth.verify(await sign(rsa));
    await auth.verify(await sign(rsa));
    assert.equal(server.requests, 1, "a second token with a known kid is checked from the cache");

    const rotated = await makeKey("ES256", "ec-2");
    server.keys.push(rotated.jwk);
    await cooldownOver(server, cooldownMs);
    const identity = await auth.verify(await sign(rotated, { sub: "u_rotated" }));
    assert.ok(identity.kind === "user" && identity.userId === "u_rotated");
    assert.equal(server.requests, 2, "the unknown kid fetched the set once");
    await auth.verify(await sign(rotated));
    await auth.verify(await sign(rsa));
    assert.equal(server.requests, 2, "both kids are now cached");

    // The old key leaves the set: once the set is fetched again, its tokens are refused.
    server.keys.splice(0, 1);
    await cooldownOver(server, cooldownMs);
    const late = await makeKey("EdDSA", "ed-2");
    server.keys.push(late.jwk);
    await auth.verify(await sign(late));
    assert.equal(server.requests, 3);
    const retired = await sign(rsa);
    await assertAuthError(auth.verify(retired), "RT_ERR_UNAUTHORIZED", retired);
  });

  test("the cooldown bounds fetches: a burst of unknown kids costs at most one fetch per cooldown", async () => {
    const server = await serve([rsa.jwk]);
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server, { cooldownMs: 60_000 }) });
    await auth.verify(await sign(rsa));
    assert.equal(server.requests, 1);
    const unknown = () => sign(outsiderEc, {}, `forged-${++serial}`);
    const burst = await Promise.all(Array.from({ length: 40 }, unknown));
    await Promise.all(burst.map((t) => assertAuthError(auth.verify(t), "RT_ERR_UNAUTHORIZED", t)));
    for (let i = 0; i < 10; i++) {
      const token = await unknown();
      await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    }
    assert.equal(server.requests, 1, "within the cooldown, unknown kids fetch nothing");

    // Once the cooldown is over, a concurrent burst shares one fetch, which starts a new one.
    const cooldownMs = 1000;
    const short = await serve([rsa.jwk]);
    const shortAuth = createAuth({ ...BASE, jwks: jwksConfig(short, { cooldownMs }) });
    await shortAuth.verify(await sign(rsa));
    await cooldownOver(short, cooldownMs);
    const second = await Promise.all(Array.from({ length: 40 }, unknown));
    await Promise.all(
      second.map((t) => assertAuthError(shortAuth.verify(t), "RT_ERR_UNAUTHORIZED", t)),
    );
    assert.equal(short.requests, 2, "40 unknown kids at once: one fetch");
    for (let i = 0; i < 10; i++) {
      const token = await unknown();
      await assertAuthError(shortAuth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    }
    assert.equal(short.requests, 2, "and a new cooldown");
  });

  test("401 for a key outside the set: an unknown kid, or a known kid signed with another key", async () => {
    const server = await serve([rsa.jwk, ec.jwk]);
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server) });
    // `outsider` is another RSA key published nowhere, under the set's own kid.
    for (const token of [
      await sign(outsider),
      await sign(outsiderEc),
      await sign(outsiderEc, {}, ec.kid),
    ]) {
      await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    }
    assert.equal((await auth.verify(await sign(rsa))).kind, "user", "control");
  });

  test("alg confusion: an HS256 token keyed with the set's RSA public key (PEM or JWK) is 401", async () => {
    const server = await serve([rsa.jwk]);
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server) });
    const pem = await exportSPKI(rsa.publicKey);
    for (const hmacKey of [pem, JSON.stringify(rsa.jwk), JSON.stringify({ keys: [rsa.jwk] })]) {
      const token = await new SignJWT(claims())
        .setProtectedHeader({ alg: "HS256", kid: rsa.kid, typ: "JWT" })
        .sign(new TextEncoder().encode(hmacKey));
      await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    }
    assert.equal(server.requests, 0, "an HS256 token is never checked against the JWKS");
    // Control: the same claims with the secret verify, so the refusals above were the key.
    const genuine = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode(SECRET));
    assert.equal((await auth.verify(genuine)).kind, "user");
  });

  test("alg none is 401, whatever JWT_ALGORITHMS allows", async () => {
    const server = await serve([rsa.jwk, ec.jwk, ed.jwk]);
    const every: JwtAlgorithm[] = ["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA", "PS256"];
    const auth = createAuth({ ...BASE, algorithms: every, jwks: jwksConfig(server) });
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    for (const token of [
      new UnsecuredJWT(claims()).encode(),
      `${b64({ alg: "none", kid: rsa.kid })}.${b64(claims())}.`,
      `${b64({ alg: "None", kid: rsa.kid })}.${b64(claims())}.`,
      `${b64({ kid: rsa.kid })}.${b64(claims())}.`,
    ]) {
      await assertAuthError(auth.verify(token), "RT_ERR_UNAUTHORIZED", token);
    }
  });

  test("an algorithm JWT_ALGORITHMS leaves out is 401 even with its key in the set", async () => {
    const server = await serve([rsa.jwk, ec.jwk]);
    const auth = createAuth({ ...BASE, algorithms: ["RS256"], jwks: jwksConfig(server) });
    const es256 = await sign(ec);
    await assertAuthError(auth.verify(es256), "RT_ERR_UNAUTHORIZED", es256);
    assert.equal(server.requests, 0, "refused before any key is looked up");
    assert.equal((await auth.verify(await sign(rsa))).kind, "user", "control: RS256 is allowed");
    await assertAuthError(auth.verify(es256), "RT_ERR_UNAUTHORIZED", es256);
    const hs256 = await auth.issueUserToken({ id: "u_own", name: "Own" });
    await assertAuthError(auth.verify(hs256), "RT_ERR_UNAUTHORIZED", hs256);
    // Without a JWKS, no asymmetric algorithm verifies, whatever the list says.
    const noJwks = createAuth({ ...BASE, algorithms: ["HS256", "RS256"] });
    const rs256 = await sign(rsa);
    await assertAuthError(noJwks.verify(rs256), "RT_ERR_UNAUTHORIZED", rs256);
  });

  test("JWKS down: cached keys keep verifying even once the cache is stale; unknown kids are 401; one failure reported per fetch", async () => {
    const server = await serve([rsa.jwk, ed.jwk]);
    const failures: unknown[] = [];
    // A cache that is stale at once: every verification wants a fresh set.
    const auth = createAuth({ ...BASE, jwks: jwksConfig(server, { cacheMaxAgeMs: 0 }) }, Date.now, {
      jwksFetchFailed: (error) => failures.push(error),
    });
    await auth.verify(await sign(rsa));
    await auth.verify(await sign(ed));
    assert.equal(server.requests, 2, "a stale cache is fetched again while the JWKS is up");
    await server.close();

    const tokens = await Promise.all([sign(rsa), sign(rsa), sign(ed)]);
    const identities = await Promise.all(tokens.map((t) => auth.verify(t)));
    assert.deepEqual(
      identities.map((i) => i.kind),
      ["user", "user", "user"],
    );
    assert.equal(failures.length, 1, "three verifications waited for one failed fetch");
    assert.ok(failures[0] instanceof Error);
    for (const token of [await sign(rsa), await sign(ed)]) {
      assert.equal((await auth.verify(token)).kind, "user");
    }
    const unknown = await sign(outsiderEc);
    await assertAuthError(auth.verify(unknown), "RT_ERR_UNAUTHORIZED", unknown);
    assert.equal(failures.length, 1, "no new fetch during the back-off");
  });

  test("a JWKS that never answers: an unknown kid is 401 after the fetch timeout, and the next tokens wait for nothing", async () => {
    const timeoutMs = 300;
    const server = await serve([rsa.jwk]);
    const failures: unknown[] = [];
    const auth = createAuth(
      { ...BASE, jwks: jwksConfig(server, { cacheMaxAgeMs: 0, timeoutMs }) },
      Date.now,
      { jwksFetchFailed: (error) => failures.push(error) },
    );
    await auth.verify(await sign(rsa));
    server.hang = true;

    const unknown = await sign(outsiderEc);
    const started = performance.now();
    await assertAuthError(auth.verify(unknown), "RT_ERR_UNAUTHORIZED", unknown);
    const waited = performance.now() - started;
    assert.equal(server.requests, 2, "it asked the JWKS");
    assert.ok(waited >= timeoutMs - 20, `refused after ${waited} ms, before the timeout`);
    assert.ok(waited < timeoutMs + 2000, `refused after ${waited} ms`);
    assert.equal(failures.length, 1);
    assert.ok(failures[0] instanceof errors.JWKSTimeout, String(failures[0]));

    const known = await sign(rsa);
    const again = performance.now();
    assert.equal((await auth.verify(known)).kind, "user");
    assert.ok(performance.now() - again < timeoutMs, "a cached key does not wait for the JWKS");
    assert.equal(server.requests, 2, "no fetch during the back-off");
  });
});

describe("JWKS through the service", () => {
  let rsa: IdpKey;
  let ec: IdpKey;
  let ed: IdpKey;
  let outsider: IdpKey;

  before(async () => {
    [rsa, ec, ed, outsider] = await Promise.all([
      makeKey("RS256", "rsa-1"),
      makeKey("ES256", "ec-1"),
      makeKey("EdDSA", "ed-1"),
      makeKey("ES256", "ec-outside"),
    ]);
  });

  test("GET /api/auth/me with IdP tokens; a failed fetch is counted and logged, without the token", async () => {
    const server = await startJwks([rsa.jwk, ec.jwk, ed.jwk]);
    const logs: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(chunk.toString("utf8"));
        done();
      },
    });
    const loaded = loadConfig({
      NODE_ENV: "test",
      JWT_SECRET: TEST_SECRET,
      JWT_JWKS_URL: server.url,
    });
    assert.ok(loaded.auth.jwks);
    // A cooldown below JWT_JWKS_COOLDOWN_MS's minimum, so an unknown kid fetches at once.
    const config = {
      ...loaded,
      auth: { ...loaded.auth, jwks: { ...loaded.auth.jwks, cooldownMs: 0 } },
    };
    const { app, metrics, shutdown } = await buildApp(config, {
      logger: { level: "warn", stream },
    });
    try {
      const me = (token: string) =>
        app.inject({
          method: "GET",
          url: "/api/auth/me",
          headers: { authorization: `Bearer ${token}` },
        });
      for (const key of [rsa, ec, ed]) {
        const res = await me(await sign(key, { sub: `u_${key.alg}`, name: `${key.alg} user` }));
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(res.json(), { user: { id: `u_${key.alg}`, name: `${key.alg} user` } });
      }
      await server.close();

      const unknown = await sign(outsider);
      const refused = await me(unknown);
      assert.equal(refused.statusCode, 401);
      assert.equal((refused.json() as { code: string }).code, "RT_ERR_UNAUTHORIZED");
      assert.ok(!refused.body.includes(unknown));
      assert.equal((await me(await sign(ed))).statusCode, 200, "a cached kid still verifies");

      const text = await metrics.render();
      assert.match(text, /^realtime_jwks_fetch_failures_total 1$/m);
      const warnings = logs
        .map((line) => JSON.parse(line) as { level: number; msg: string; jwks?: string })
        .filter((entry) => entry.level === 40 && /JWKS/.test(entry.msg));
      assert.equal(warnings.length, 1, logs.join(""));
      assert.equal(warnings[0]?.jwks, server.url);
      const all = logs.join("");
      assert.ok(!all.includes(unknown) && !all.includes(unknown.split(".")[2] ?? "-"));
    } finally {
      await shutdown(0);
      await server.close();
    }
  });

  test("a stream opened with an IdP token keeps receiving events after the JWKS went down", async () => {
    const server = await startJwks([rsa.jwk, ed.jwk]);
    const svc = await startService({ JWT_JWKS_URL: server.url });
    const streams: { close(): void }[] = [];
    try {
      const stream = await openStream(`${svc.url}/api/events?channel=channel:idp`, {
        authorization: `Bearer ${await sign(rsa, { sub: "u_streamer", name: "Streamer" })}`,
      });
      streams.push(stream);
      assert.equal(stream.status, 200);
      await stream.waitFor((e) => e.event === "ready");
      await server.close();

      const poster = await svc.login("Poster");
      const posted = await postJson(`${svc.url}/api/chat/messages`, poster.token, {
        channel: "idp",
        content: "after the JWKS went down",
      });
      assert.equal(posted.status, 204);
      const event = await stream.waitFor(
        (e) => e.event === undefined && JSON.parse(e.data).content === "after the JWKS went down",
      );
      assert.equal(JSON.parse(event.data).type, "chat");

      // New streams: a cached kid opens one, an unknown kid is refused (401, not 500).
      const cached = await openStream(`${svc.url}/api/events?channel=channel:idp`, {
        authorization: `Bearer ${await sign(ed)}`,
      });
      streams.push(cached);
      assert.equal(cached.status, 200);
      const unknown = await openStream(`${svc.url}/api/events?channel=channel:idp`, {
        authorization: `Bearer ${await sign(outsider)}`,
      });
      assert.equal(unknown.status, 401);
      assert.equal((await refusal(unknown)).code, "RT_ERR_UNAUTHORIZED");
      assert.equal(stream.events.filter((e) => e.event === "close").length, 0);
    } finally {
      for (const s of streams) s.close();
      await svc.stop();
      await server.close();
    }
  });
});
