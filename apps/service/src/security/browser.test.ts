/**
 * Attacks through a victim's browser: another site reading the API with the user's cookie
 * (CORS), posting in the user's name (CSRF: foreign Origin, no Origin at all, `Origin: null`,
 * a `text/plain` form), opening streams in the user's name; and what the headers promise
 * (session cookie flags, security headers). Each refusal is 403 `RT_ERR_FORBIDDEN` (or no CORS
 * grant), while the well-behaved same-origin client on the same pod goes on.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  ofType,
  openStream,
  postJson,
  type Reply,
  refusal,
  request,
  type Stream,
} from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import { ensureWebBuilt } from "../../../web/build.ts";
import { WEB_DIST_DIR } from "../routes/page.ts";

const ALLOWED = "https://app.example.com";
const EVIL = "https://evil.example";

describe("CORS and CSRF", () => {
  let svc: RunningService;
  let good: { token: string };
  let cookie: string;
  let goodStream: Stream;
  let self: string;

  before(async () => {
    svc = await startService({ CORS_ORIGINS: ALLOWED });
    good = await svc.login("Good");
    cookie = `rt_session=${good.token}`;
    self = svc.url;
    // The victim's own page: a same-origin stream authenticated by the cookie.
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:browser`, {
      cookie,
      "sec-fetch-site": "same-origin",
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  const chat = (content: string, headers: Record<string, string>, body?: string) =>
    request(`${svc.url}/api/chat/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: body ?? JSON.stringify({ channel: "browser", content }),
    });

  async function goodStillWorks(content: string): Promise<void> {
    const posted = await chat(content, { cookie, origin: self });
    assert.equal(posted.status, 204, posted.text);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  function assertForbidden(reply: Reply, what: string) {
    assert.equal(reply.status, 403, `${what}: ${reply.text}`);
    assert.equal(reply.json?.code, "RT_ERR_FORBIDDEN", what);
  }

  it("preflight: only the allowed origin gets an exact ACAO with credentials, never *", async () => {
    const preflight = (origin: string) =>
      request(`${svc.url}/api/chat/messages`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      });
    const allowed = await preflight(ALLOWED);
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(allowed.headers["access-control-allow-credentials"], "true");
    assert.match(String(allowed.headers.vary), /origin/i);
    for (const origin of [EVIL, "null", `${ALLOWED}.evil.example`, "http://app.example.com"]) {
      const reply = await preflight(origin);
      assert.equal(reply.headers["access-control-allow-origin"], undefined, origin);
    }
    await goodStillWorks("after preflights");
  });

  it("a cross-origin page may send Idempotency-Key and read Idempotent-Replayed", async () => {
    const preflight = await request(`${svc.url}/api/chat/messages`, {
      method: "OPTIONS",
      headers: {
        origin: ALLOWED,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,idempotency-key",
      },
    });
    assert.equal(preflight.status, 204);
    assert.match(
      String(preflight.headers["access-control-allow-headers"]),
      /(^|,\s*)idempotency-key(,|$)/,
    );
    const { token } = await svc.login("Cross");
    const post = () =>
      request(`${svc.url}/api/chat/messages`, {
        method: "POST",
        headers: {
          origin: ALLOWED,
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "idempotency-key": "cross-origin-1",
        },
        body: JSON.stringify({ channel: "channel:cors", content: "once" }),
      });
    assert.equal((await post()).status, 204);
    const again = await post();
    assert.equal(again.status, 204);
    assert.equal(again.headers["idempotent-replayed"], "true");
    assert.match(
      String(again.headers["access-control-expose-headers"]),
      /(^|,\s*)idempotent-replayed(,|$)/,
    );
  });

  it("a credentialed stream: allowed origin gets ACAO + ACAC; a foreign origin is refused", async () => {
    const allowed = await openStream(`${svc.url}/api/events?channel=channel:browser`, {
      cookie,
      origin: ALLOWED,
    });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(allowed.headers["access-control-allow-credentials"], "true");
    allowed.close();
    for (const origin of [EVIL, "null"]) {
      const foreign = await openStream(`${svc.url}/api/events?channel=channel:browser`, {
        cookie,
        origin,
      });
      assert.equal(foreign.status, 403, origin);
      assert.equal(foreign.headers["access-control-allow-origin"], undefined);
      assert.equal((await refusal(foreign)).code, "RT_ERR_FORBIDDEN");
    }
    await goodStillWorks("after foreign streams");
  });

  const csrf: [string, Record<string, string>][] = [
    ["a foreign Origin", { origin: EVIL }],
    ["Origin: null (sandboxed iframe)", { origin: "null" }],
    ["neither Origin nor Referer", {}],
    ["a foreign Referer and no Origin", { referer: `${EVIL}/page` }],
    ["Sec-Fetch-Site: cross-site and no Origin", { "sec-fetch-site": "cross-site" }],
    ["Sec-Fetch-Site: same-site from a sibling", { "sec-fetch-site": "same-site", origin: EVIL }],
  ];
  for (const [what, headers] of csrf) {
    it(`a cookie-authenticated POST with ${what} → 403`, async () => {
      assertForbidden(await chat(`csrf ${what}`, { cookie, ...headers }), what);
      await goodStillWorks(`after ${what}`);
    });
  }

  it("a text/plain form POST is refused (403 with the cookie, 415 without)", async () => {
    const form = JSON.stringify({ channel: "browser", content: "form" });
    assertForbidden(
      await chat("", { cookie, origin: EVIL, "content-type": "text/plain" }, form),
      "form",
    );
    const bare = await chat("", { "content-type": "text/plain" }, form);
    assert.equal(bare.status, 415);
    assert.equal(bare.json?.code, "RT_ERR_UNSUPPORTED_MEDIA_TYPE");
  });

  it("DELETE and logout with the cookie from a foreign origin → 403", async () => {
    const del = await request(`${svc.url}/api/jobs/job_doesnotexist00000000`, {
      method: "DELETE",
      headers: { cookie, origin: EVIL },
    });
    assertForbidden(del, "DELETE");
    const logout = await request(`${svc.url}/api/auth/logout`, {
      method: "POST",
      headers: { cookie, origin: EVIL },
    });
    assertForbidden(logout, "logout");
    await goodStillWorks("after foreign DELETE/logout");
  });

  it("a bogus Authorization header with the cookie: no CSRF exemption, no cookie fallback", async () => {
    // Each parses as no bearer token at all; the cookie must not stand in for it.
    const bogus = ["Bearer a b", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "token", ""];
    for (const authorization of bogus) {
      const what = JSON.stringify(authorization);
      const crossSite = await chat(`bogus cross-site ${what}`, {
        cookie,
        authorization,
        origin: EVIL,
        "sec-fetch-site": "cross-site",
      });
      assertForbidden(crossSite, `cross-site with ${what}`);
      // Same-origin, the CSRF check passes; authentication refuses the header itself.
      const own = await chat(`bogus same-origin ${what}`, { cookie, authorization, origin: self });
      assert.equal(own.status, 401, `same-origin with ${what}: ${own.text}`);
      assert.equal(own.json?.code, "RT_ERR_UNAUTHORIZED", what);
      const read = await request(`${svc.url}/api/auth/me`, { headers: { cookie, authorization } });
      assert.equal(read.status, 401, `read with ${what}: ${read.text}`);
    }
    // Nothing was published: the good client's next message arrives after none of them.
    await goodStillWorks("after bogus authorization headers");
    const chats = goodStream.events.filter(ofType("chat")).map((e) => JSON.parse(e.data).content);
    assert.deepEqual(
      chats.filter((content: string) => content.startsWith("bogus")),
      [],
    );
  });

  it("same-origin, allow-listed and bearer requests pass", async () => {
    for (const [what, headers] of [
      ["Sec-Fetch-Site: same-origin", { cookie, "sec-fetch-site": "same-origin" }],
      ["Origin of this host", { cookie, origin: self }],
      ["a Referer on this host", { cookie, referer: `${self}/r/browser` }],
      ["an allow-listed Origin", { cookie, origin: ALLOWED }],
      [
        "Bearer (not CSRF-able) with any Origin",
        { authorization: `Bearer ${good.token}`, origin: EVIL },
      ],
    ] as const) {
      const reply = await chat(`ok ${what}`, headers);
      assert.equal(reply.status, 204, `${what}: ${reply.text}`);
    }
  });
});

describe("no CORS_ORIGINS: same-origin only", () => {
  let svc: RunningService;
  before(async () => {
    svc = await startService();
  });
  after(() => svc.stop());

  it("grants no origin at all", async () => {
    const reply = await request(`${svc.url}/api/chat/messages`, {
      method: "OPTIONS",
      headers: { origin: ALLOWED, "access-control-request-method": "POST" },
    });
    assert.equal(reply.headers["access-control-allow-origin"], undefined);
    const { token } = await svc.login("Solo");
    const stream = await openStream(`${svc.url}/api/events?channel=channel:x`, {
      authorization: `Bearer ${token}`,
      origin: ALLOWED,
    });
    assert.equal(stream.headers["access-control-allow-origin"], undefined);
    stream.close();
  });
});

describe("cookie and security headers", () => {
  const SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "x-frame-options": "SAMEORIGIN",
  };

  function assertSecurityHeaders(headers: Record<string, unknown>, what: string) {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      assert.equal(headers[name], value, `${what}: ${name}`);
    }
    const csp = String(headers["content-security-policy"]);
    assert.match(csp, /default-src 'self'/, what);
    assert.match(csp, /script-src 'self'(;|$)/, what);
    assert.match(csp, /frame-ancestors 'none'/, what);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, what);
    assert.equal(headers["x-powered-by"], undefined, what);
  }

  it("development over http: HttpOnly; SameSite=Lax, no Secure, no HSTS; headers everywhere", async () => {
    const svc = await startService();
    try {
      const login = await postJson(`${svc.url}/api/auth/dev-login`, null, { name: "Ada" });
      const setCookie = String(login.headers["set-cookie"]);
      assert.match(setCookie, /; HttpOnly/);
      assert.match(setCookie, /; SameSite=Lax/);
      assert.doesNotMatch(setCookie, /; Secure/);
      assertSecurityHeaders(login.headers, "JSON");
      assert.equal(login.headers["strict-transport-security"], undefined);
      const stream = await openStream(`${svc.url}/api/events?channel=channel:h`, {
        authorization: `Bearer ${login.json?.token}`,
      });
      assert.equal(stream.status, 200);
      assertSecurityHeaders(stream.headers, "SSE");
      stream.close();
      const refused = await request(`${svc.url}/api/events?channel=channel:h`);
      assert.equal(refused.status, 401);
      assertSecurityHeaders(refused.headers, "SSE refusal");
      // Refused by an earlier hook (a compressed body, before anything is read): headers too.
      const compressed = await request(`${svc.url}/api/chat/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        body: "x",
      });
      assert.equal(compressed.status, 415);
      assertSecurityHeaders(compressed.headers, "415 from an early hook");
      assertSecurityHeaders((await request(`${svc.url}/`)).headers, "page");
      assertSecurityHeaders((await request(`${svc.url}/api/nope`)).headers, "404");
    } finally {
      await svc.stop();
    }
  });

  it("production: the cookie is Secure and HSTS is sent", async () => {
    const svc = await startService({ NODE_ENV: "production", AUTH_DEV_LOGIN: "true" });
    try {
      const login = await postJson(`${svc.url}/api/auth/dev-login`, null, { name: "Ada" });
      assert.equal(login.status, 200);
      const setCookie = String(login.headers["set-cookie"]);
      assert.match(setCookie, /; HttpOnly/);
      assert.match(setCookie, /; Secure/);
      assert.match(setCookie, /; SameSite=Lax/);
      assert.match(String(login.headers["strict-transport-security"]), /max-age=31536000/);
      assertSecurityHeaders(login.headers, "production JSON");
    } finally {
      await svc.stop();
    }
  });

  it("the built web app needs nothing the CSP forbids (no inline script or style)", async () => {
    // Builds it when missing (as `npm start` does), so this check can never be skipped.
    await ensureWebBuilt();
    const index = `${WEB_DIST_DIR}index.html`;
    assert.ok(existsSync(index), "apps/web was built");
    const html = readFileSync(index, "utf8");
    for (const [, attributes, body] of html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)) {
      assert.match(attributes ?? "", /\bsrc="\/[^"]+"/, "every script is a same-origin file");
      assert.equal(body?.trim(), "", "no inline script");
    }
    assert.doesNotMatch(html, /<style[\s>]|\sstyle="|\son[a-z]+="/i, "no inline style or handler");
  });
});
