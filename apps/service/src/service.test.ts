/**
 * The service end to end over real sockets: login, SSE over HTTP/1.1, h2c and TLS h2, chat
 * fan-out, refusals before the stream starts, slow clients and draining.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CloseCode } from "@realtime/protocol";
import { until } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import { h2Request, openHttp1, openHttp2 } from "@realtime/testkit/sse-client";

const isData = (e: { event?: string | undefined }) => e.event === undefined;
/** Chat events only: presence events share the room channels. */
const isChat = (e: { event?: string | undefined; data: string }) =>
  isData(e) && JSON.parse(e.data).type === "chat";

describe("SSE over HTTP/1.1", () => {
  let svc: RunningService;
  before(async () => {
    svc = await startService();
  });
  after(() => svc.stop());

  it("delivers a chat message posted by another user, with an id, to a multi-channel stream", async () => {
    const ada = await svc.login("Ada");
    const bob = await svc.login("Bob");
    const stream = await openHttp1(
      `${svc.url}/api/events?channel=channel:general&channel=user:${ada.user.id}`,
      { authorization: `Bearer ${ada.token}` },
    );
    assert.equal(stream.status, 200);
    assert.equal(stream.headers["content-type"], "text/event-stream; charset=utf-8");
    assert.match(String(stream.headers["cache-control"]), /no-cache/);
    assert.equal(stream.headers["x-accel-buffering"], "no");
    const posted = await svc.post("/api/chat/messages", bob.token, {
      channel: "general",
      content: "hello\nworld",
    });
    assert.equal(posted.status, 204);
    const event = await stream.waitFor(isChat);
    const data = JSON.parse(event.data);
    assert.deepEqual(
      { type: data.type, channel: data.channel, userId: data.userId, userName: data.userName },
      { type: "chat", channel: "channel:general", userId: bob.user.id, userName: "Bob" },
    );
    assert.equal(data.content, "hello\nworld");
    assert.ok(event.id && event.id.length > 2 && event.id.length <= 128);
    stream.close();
  });

  it("accepts the session cookie set by the dev login", async () => {
    const login = await svc.service.app.inject({
      method: "POST",
      url: "/api/auth/dev-login",
      payload: { name: "Cookie" },
    });
    const setCookie = String(login.headers["set-cookie"]);
    assert.match(setCookie, /HttpOnly/i);
    const cookie = setCookie.split(";")[0] ?? "";
    const stream = await openHttp1(`${svc.url}/api/events?channel=channel:cookies`, { cookie });
    assert.equal(stream.status, 200);
    stream.close();
  });

  it("sends a user's private events only to that user's stream", async () => {
    const ada = await svc.login("Ada");
    const stream = await openHttp1(`${svc.url}/api/events?channel=user:${ada.user.id}`, {
      authorization: `Bearer ${ada.token}`,
    });
    await svc.service.hub.sendToUser(ada.user.id, { type: "notification", message: "hi" });
    const event = await stream.waitFor(isData);
    assert.equal(JSON.parse(event.data).type, "notification");
    stream.close();
  });
});

describe("refusals before the stream starts", () => {
  let svc: RunningService;
  let token: string;
  let userId: string;
  before(async () => {
    svc = await startService({ MAX_CONNECTIONS: "2", MAX_CHANNELS_PER_STREAM: "3" });
    const login = await svc.login("Eve");
    token = login.token;
    userId = login.user.id;
  });
  after(() => svc.stop());

  const get = (url: string, headers: Record<string, string> = {}) =>
    svc.service.app.inject({ method: "GET", url, headers });
  const auth = () => ({ authorization: `Bearer ${token}` });

  for (const [name, query] of [
    ["no channel", ""],
    ["unknown prefix", "?channel=room:x"],
    ["control character", "?channel=channel:a%0Aevent:%20x"],
    ["space", "?channel=channel:a%20b"],
    ["empty id", "?channel=channel:"],
  ] as const) {
    it(`400 for ${name}`, async () => {
      const res = await get(`/api/events${query}`, auth());
      assert.equal(res.statusCode, 400);
      const body = res.json();
      assert.match(body.code, /^RT_ERR_(BAD_CHANNEL|BAD_REQUEST)$/);
      assert.equal(typeof body.message, "string");
    });
  }

  it("400 for too many channels", async () => {
    const res = await get(
      "/api/events?channel=channel:a&channel=channel:b&channel=channel:c&channel=channel:d",
      auth(),
    );
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, "RT_ERR_TOO_MANY_CHANNELS");
  });

  it("401 without a token, with a forged one, and with a token in the query string", async () => {
    for (const headers of [{}, { authorization: `Bearer ${token.slice(0, -4)}AAAA` }] as Array<
      Record<string, string>
    >) {
      const res = await get("/api/events?channel=channel:a", headers);
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().code, "RT_ERR_UNAUTHORIZED");
    }
    const res = await get(`/api/events?channel=channel:a&token=${token}`);
    assert.ok(res.statusCode === 400 || res.statusCode === 401);
  });

  it("401 RT_ERR_TOKEN_EXPIRED for an expired token", async () => {
    const { SignJWT } = await import("jose");
    const expired = await new SignJWT({ name: "Old" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("u_old")
      .setIssuer("realtime")
      .setAudience("realtime")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(new TextEncoder().encode("test-secret-test-secret-test-secret-0123"));
    const res = await get("/api/events?channel=channel:a", { authorization: `Bearer ${expired}` });
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().code, "RT_ERR_TOKEN_EXPIRED");
  });

  it("403 for another user's private channel, alone or beside allowed ones", async () => {
    for (const query of [
      "channel=user:u_someoneelse",
      `channel=user:${userId}&channel=user:u_other`,
    ]) {
      const res = await get(`/api/events?${query}`, auth());
      assert.equal(res.statusCode, 403);
      assert.equal(res.json().code, "RT_ERR_CHANNEL_FORBIDDEN");
    }
  });

  it("503 with Retry-After past MAX_CONNECTIONS, and metrics count the refusal", async () => {
    const headers = auth();
    const open = await Promise.all([
      openHttp1(`${svc.url}/api/events?channel=channel:a`, headers),
      openHttp1(`${svc.url}/api/events?channel=channel:b`, headers),
    ]);
    const refused = await openHttp1(`${svc.url}/api/events?channel=channel:c`, headers);
    assert.equal(refused.status, 503);
    assert.match(String(refused.headers["retry-after"]), /^\d+$/);
    await refused.ended;
    assert.equal(JSON.parse(refused.text()).code, "RT_ERR_AT_CAPACITY");
    for (const s of open) s.close();
    const metrics = await get("/metrics");
    assert.match(metrics.body, /sse_connections_refused_total\{reason="RT_ERR_AT_CAPACITY"\} 1/);
  });

  it("chat: 413 for a body over the limit, 400 for unknown fields, wrong types, bad rooms", async () => {
    const big = await svc.post("/api/chat/messages", token, {
      channel: "a",
      content: "x".repeat(70_000),
    });
    assert.equal(big.status, 413);
    assert.equal((big.body as { code: string }).code, "RT_ERR_PAYLOAD_TOO_LARGE");
    for (const body of [
      { channel: "a", content: "hi", userId: "u_admin" },
      { channel: "a", content: 5 },
      { channel: "user:u_x", content: "hi" },
      { channel: "a b", content: "hi" },
      { channel: "a", content: "bell\u0007" },
      { channel: "a", content: "   " },
    ]) {
      const res = await svc.post("/api/chat/messages", token, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match((res.body as { code: string }).code, /^RT_ERR_/);
    }
    const anonymous = await svc.post("/api/chat/messages", null, { channel: "a", content: "hi" });
    assert.equal(anonymous.status, 401);
  });
});

describe("HTTP/2", () => {
  it("h2c: two SSE streams and a POST multiplexed on one session", async () => {
    const svc = await startService({ HTTP2: "h2c" });
    const { token } = await svc.login("Ada");
    const session = http2.connect(svc.url);
    const headers = { authorization: `Bearer ${token}` };
    const one = await openHttp2(session, "/api/events?channel=channel:h2", headers);
    const two = await openHttp2(
      session,
      "/api/events?channel=channel:h2&channel=channel:other",
      headers,
    );
    assert.equal(one.status, 200);
    assert.equal(one.headers.connection, undefined, "no Connection header on h2");
    const posted = await h2Request(
      session,
      {
        ":method": "POST",
        ":path": "/api/chat/messages",
        "content-type": "application/json",
        ...headers,
      },
      JSON.stringify({ channel: "h2", content: "multiplexed" }),
    );
    assert.equal(posted.status, 204);
    for (const stream of [one, two]) {
      const event = await stream.waitFor(isChat);
      assert.equal(JSON.parse(event.data).content, "multiplexed");
    }
    session.close();
    await svc.stop();
  });

  it("TLS: h2 through ALPN, and HTTP/1.1 fallback on the same port", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rt-tls-"));
    try {
      const key = join(dir, "key.pem");
      const cert = join(dir, "cert.pem");
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
        ],
        { stdio: "ignore" },
      );
      const svc = await startService({ TLS_CERT: cert, TLS_KEY: key });
      const { token } = await svc.login("Ada");
      const session = http2.connect(svc.url, { rejectUnauthorized: false });
      const headers = { authorization: `Bearer ${token}` };
      const stream = await openHttp2(session, "/api/events?channel=channel:tls", headers);
      assert.equal(stream.status, 200);
      assert.equal(session.alpnProtocol, "h2");
      const https = await import("node:https");
      const fallbackStatus = await new Promise<number>((resolve, reject) => {
        https
          .get(`${svc.url}/healthz`, { rejectUnauthorized: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on("error", reject);
      });
      assert.equal(fallbackStatus, 200);
      // A stream over the HTTP/1.1 fallback: its socket (TLS) is detached from node:http too.
      let h1Socket: { parser?: unknown } | null = null;
      svc.service.app.server.once("request", (request: { socket: { parser?: unknown } }) => {
        h1Socket = request.socket;
      });
      const h1 = https.get(`${svc.url}/api/events?channel=channel:tls`, {
        rejectUnauthorized: false,
        headers,
      });
      const h1Response = await new Promise<import("node:http").IncomingMessage>((resolve) =>
        h1.once("response", resolve),
      );
      assert.equal(h1Response.statusCode, 200);
      assert.equal(h1Response.headers.connection, "close");
      let h1Body = "";
      h1Response.setEncoding("utf8");
      h1Response.on("data", (chunk: string) => {
        h1Body += chunk;
      });
      await svc.post("/api/chat/messages", token, { channel: "tls", content: "secure" });
      const event = await stream.waitFor(isChat);
      assert.equal(JSON.parse(event.data).content, "secure");
      await until(() => h1Body.includes("secure"), "the event on the HTTP/1.1 stream");
      assert.equal((h1Socket as { parser?: unknown } | null)?.parser, null, "parser freed");
      h1.destroy();
      session.close();
      await svc.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("draining", () => {
  it("closes open streams with shutdown, a retry hint and the cursor; readiness turns false first", async () => {
    const svc = await startService();
    const { token } = await svc.login("Ada");
    const headers = { authorization: `Bearer ${token}` };
    const streams = await Promise.all(
      [1, 2, 3].map(() => openHttp1(`${svc.url}/api/events?channel=channel:d`, headers)),
    );
    const ready = await svc.service.app.inject({ method: "GET", url: "/readyz" });
    assert.equal(ready.statusCode, 200);
    // Asked in the same turn as the shutdown, before its drain can close anything (the drain
    // closes each stream at a random moment of its window; the server closes after the last).
    const stopping = svc.service.shutdown(1_000);
    const during = await svc.service.app.inject({ method: "GET", url: "/readyz" });
    assert.equal(during.statusCode, 503);
    for (const stream of streams) {
      const close = await stream.waitFor((e) => e.event === "close");
      assert.equal(JSON.parse(close.data).code, CloseCode.Shutdown);
      assert.ok(stream.retries.length >= 2);
      assert.ok(stream.lastEventId().startsWith("1."));
      await stream.ended;
    }
    await stopping;
  });
});
