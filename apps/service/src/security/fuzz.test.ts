/**
 * 10,000 fuzzed requests across every route (fast-check): random and hostile methods, paths,
 * query strings, headers (tokens valid, expired, forged, garbage; cookies; origins; encodings;
 * cursors) and bodies (JSON of the right shape with hostile strings, any JSON, random bytes,
 * oversized). Not one response may be ≥ 500, the process must not crash, and afterwards no
 * stream, lease or counter may be left behind.
 *
 * - 8,300 through `app.inject` (the whole Fastify pipeline, any header value);
 * - 1,500 `GET /api/events` over real sockets (a stream that opens is read to its headers and
 *   dropped at once: the hub must clean up after every one);
 * - 200 raw byte strings as HTTP/1.1 requests (Node's parser; its refusals are catalogue
 *   bodies too).
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { tokens, until } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import fc from "fast-check";
import { ensureWebBuilt } from "../../../web/build.ts";

const SEED = 20261127;

/** Percent-encodes any string, lone surrogates included (as U+FFFD). */
const encode = (value: string) => encodeURIComponent(value.toWellFormed());
const INJECTED = 8300;
const STREAMS = 1500;
const RAW = 200;

describe("fuzz: 10,000 hostile requests", () => {
  let svc: RunningService;
  let user: string;
  let service: string;
  let expired: string;
  let forged: string;
  const statuses = new Map<number, number>();
  const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
  let total = 0;

  before(async () => {
    // The page routes answer 503 until the web app is built; fuzz the service as it runs.
    await ensureWebBuilt();
    svc = await startService({
      RATE_LIMIT_CHAT_MAX: "1000000",
      RATE_LIMIT_PUBLISH_MAX: "1000000",
      RATE_LIMIT_LOGIN_MAX: "1000000",
      RATE_LIMIT_JOBS_MAX: "1000000",
      CHANNEL_PUBLISH_MAX: "1000000",
      MAX_CONNECTIONS_PER_USER: "16",
      RATE_LIMIT_STREAMS_MAX: "1000000",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "1000000",
      RATE_LIMIT_PRESENCE_MAX: "1000000",
      JOBS_FRAMES: "1",
      JOBS_FRAME_SIZE: "16",
      CORS_ORIGINS: "https://app.example.com",
    });
    user = (await svc.login("Fuzzy")).token;
    const issuer = tokens();
    service = await issuer.issueServiceToken({ service: "fuzz", scopes: ["publish"] });
    expired = await tokens(() => Date.now() - 7200_000).issueUserToken({
      id: "u_old",
      name: "Old",
    });
    forged = `${user.slice(0, -4)}AAAA`;
  });
  after(() => svc.stop());

  /** The arbitraries; built once the tokens exist. */
  function arbitraries() {
    const hostileString = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.constantFrom(
        "",
        " ",
        "\n\nevent: close\ndata: x\n\n",
        "\r",
        "\u0000",
        "\u202e",
        "../../etc/passwd",
        "%00",
        "%0d%0a",
        "channel:general",
        "user:u_other",
        "general",
        "__proto__",
        "constructor",
        '{"a":1}',
        "x".repeat(5000),
        "\ud800",
        "𝕏".repeat(100),
      ),
    );
    const channelName = fc.oneof(
      fc.constantFrom("channel:general", "channel:fuzz", "general", "user:u_nobody", "channel:"),
      hostileString,
      hostileString.map((s) => `channel:${s}`),
    );
    const tokenHeader = () =>
      fc.oneof(
        fc.constant(undefined),
        { weight: 4, arbitrary: fc.constantFrom(`Bearer ${user}`, `Bearer ${service}`) },
        fc.constantFrom(
          `Bearer ${expired}`,
          `Bearer ${forged}`,
          "Bearer ",
          "Bearer a.b.c",
          "Basic dXNlcjpwYXNz",
          `bearer   ${user}  `,
          `Bearer ${"a".repeat(9000)}`,
        ),
        hostileString,
      );
    const shapedBody = (path: string) => {
      if (path === "/api/chat/messages") {
        return fc.record(
          { channel: channelName, content: hostileString, extra: hostileString },
          { requiredKeys: [] },
        );
      }
      if (path === "/api/publish") {
        return fc.record(
          {
            channel: channelName,
            event: fc.oneof(
              fc.record({
                type: fc.constantFrom("note", "chat", "close", "A", ""),
                message: hostileString,
              }),
              fc.jsonValue(),
            ),
          },
          { requiredKeys: [] },
        );
      }
      if (path === "/api/generate/video") {
        return fc.record(
          {
            prompt: hostileString,
            aspectRatio: fc.oneof(fc.constantFrom("16:9", "1:1"), hostileString),
          },
          { requiredKeys: [] },
        );
      }
      if (path === "/api/auth/dev-login") {
        return fc.record({ name: hostileString, admin: fc.boolean() }, { requiredKeys: [] });
      }
      return fc.jsonValue();
    };
    const body = (path: string): fc.Arbitrary<string | Buffer | undefined> =>
      fc.oneof(
        { weight: 5, arbitrary: shapedBody(path).map((value) => JSON.stringify(value)) },
        { weight: 2, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom("", "{", "null", "[]", '{"__proto__":{"x":1}}') },
        { weight: 1, arbitrary: fc.constant(JSON.stringify({ content: "x".repeat(70_000) })) },
      );
    const jobId = fc.oneof(
      fc.stringMatching(/^j_[0-9A-Za-z]{20}$/),
      hostileString.map((s) => encode(s)),
    );
    const path = fc.oneof(
      fc.constantFrom(
        "/api/auth/dev-login",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/chat/messages",
        "/api/publish",
        "/api/generate/video",
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/index.html",
        "/favicon.svg",
        "/r/general",
        "/docs/json",
        "/api",
        "/api/",
        "/api/nope",
        "//api//chat//messages",
        "/api/chat/messages/",
        "/API/CHAT/MESSAGES",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%2f..%2fpackage.json",
      ),
      jobId.map((id) => `/api/jobs/${id}`),
      jobId.map((id) => `/api/media/${id}`),
      channelName.map((c) => `/api/channels/${encode(c)}/presence`),
      hostileString.map((s) => `/${encode(s)}`),
    );
    const query = fc.oneof(
      fc.constant(""),
      hostileString.map((s) => `?${encode(s)}=${encode(s)}`),
      fc
        .array(channelName, { maxLength: 20 })
        .map((cs) => `?${cs.map((c) => `channel=${encode(c)}`).join("&")}`),
    );
    const headerValue = fc.oneof(fc.constant(undefined), hostileString);
    const headers = fc.record({
      authorization: tokenHeader(),
      // Mostly well-formed, so that most requests get past the transport checks to the routes.
      "content-type": fc.oneof(
        { weight: 8, arbitrary: fc.constant("application/json") },
        fc.constantFrom(
          "application/json",
          "application/json; charset=utf-8",
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/json; charset=latin1",
          "APPLICATION/JSON",
        ),
        headerValue,
      ),
      cookie: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        fc.constantFrom(
          `rt_session=${user}`,
          `rt_session=${expired}`,
          "rt_session=",
          "a=b; rt_session=x",
        ),
        hostileString,
      ),
      origin: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        fc.constantFrom(
          "https://app.example.com",
          "https://evil.example",
          "null",
          "http://localhost:80",
        ),
        hostileString,
      ),
      "content-encoding": fc.oneof(
        { weight: 12, arbitrary: fc.constant(undefined) },
        fc.constantFrom("gzip", "identity", "br"),
        hostileString,
      ),
      "last-event-id": headerValue,
      "sec-fetch-site": fc.oneof(
        fc.constant(undefined),
        fc.constantFrom("same-origin", "cross-site"),
      ),
      "x-forwarded-for": headerValue,
      "x-user-id": headerValue,
    });
    const method = fc.constantFrom("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS");

    const injected = fc
      .tuple(method, path, query, headers)
      .chain(([m, p, q, h]) =>
        body(p).map((b) => ({ method: m, path: p, query: q, headers: h, body: b })),
      )
      // Streams are fuzzed over real sockets below (an open one never ends); HEAD opens none.
      .filter((r) => !(r.path === "/api/events" && r.method === "GET"));
    return { injected, method, hostileString, channelName, tokenHeader };
  }

  function clean(h: Record<string, string | undefined>): Record<string, string> {
    return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >;
  }

  it(`${INJECTED} requests through the whole Fastify pipeline: none ≥ 500`, async () => {
    const { injected } = arbitraries();
    await fc.assert(
      fc.asyncProperty(injected, async (r) => {
        const response = await svc.service.app.inject({
          method: r.method as "GET",
          url: r.path + r.query,
          headers: clean(r.headers),
          ...(r.body !== undefined &&
            r.method !== "GET" &&
            r.method !== "HEAD" && { payload: r.body }),
        });
        count(response.statusCode);
        total++;
        assert.ok(response.statusCode < 500, `${response.statusCode} ${response.body}`);
        if (response.statusCode >= 400 && r.method !== "HEAD") {
          const parsed = JSON.parse(response.body) as { code?: unknown };
          assert.match(String(parsed.code), /^RT_ERR_/, response.body);
        }
      }),
      { numRuns: INJECTED, seed: SEED, endOnFailure: true },
    );
  });

  it(`${STREAMS} stream requests over real sockets: none ≥ 500, every stream cleaned up`, async () => {
    const { channelName, hostileString, tokenHeader } = arbitraries();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const safe = (v: string | undefined) =>
      // Node refuses to send header values with control characters or non-Latin-1.
      v === undefined ? undefined : v.replace(/[^\t\x20-\x7e]/g, "?").slice(0, 8000);
    const stream = fc.record({
      channels: fc.array(channelName, { minLength: 0, maxLength: 20 }),
      lastEventId: fc.oneof(
        fc.constant(undefined),
        hostileString,
        fc.stringMatching(/^1(\.[0-9A-Za-z]{9,12}){1,3}$/),
      ),
      authorization: tokenHeader(),
      cookie: fc.oneof(fc.constant(undefined), fc.constant(`rt_session=${user}`)),
      origin: fc.oneof(
        fc.constant(undefined),
        fc.constantFrom("https://evil.example", "https://app.example.com"),
      ),
      lastEventHeader: fc.oneof(fc.constant(undefined), hostileString),
      extra: fc.oneof(fc.constant(""), fc.constant("&user=u_other"), fc.constant("&lastEventId=")),
    });
    await fc.assert(
      fc.asyncProperty(stream, async (s) => {
        const params = s.channels.map((c) => `channel=${encode(c)}`);
        if (s.lastEventId !== undefined) params.push(`lastEventId=${encode(s.lastEventId)}`);
        const headers = clean({
          authorization: safe(s.authorization),
          cookie: s.cookie,
          origin: s.origin,
          "last-event-id": safe(s.lastEventHeader),
        });
        const status = await new Promise<number>((resolve, reject) => {
          const req = http.get(`${svc.url}/api/events?${params.join("&")}${s.extra}`, {
            agent,
            headers,
          });
          req.once("error", reject);
          req.once("response", (res) => {
            if (res.statusCode === 200) {
              req.destroy(); // a client that leaves at once
              resolve(200);
              return;
            }
            res.resume();
            res.once("end", () => resolve(res.statusCode ?? 0));
          });
        });
        count(status);
        total++;
        assert.ok(status < 500, `status ${status}`);
      }),
      { numRuns: STREAMS, seed: SEED, endOnFailure: true },
    );
    agent.destroy();
    await until(() => svc.service.hub.connectionCount === 0, "every fuzzed stream closed", 10_000);
  });

  it(`${RAW} raw byte strings as HTTP/1.1 requests: none ≥ 500, refusals from the catalogue`, async () => {
    const { method, hostileString } = arbitraries();
    const raw = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
      fc
        .tuple(method, hostileString, hostileString)
        .map(([m, p, h]) =>
          Buffer.from(`${m} /${p} HTTP/1.1\r\nHost: x\r\nX: ${h}\r\n\r\n`, "utf8"),
        ),
      fc.constantFrom(
        Buffer.from(
          "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        Buffer.from("POST /api/chat/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        Buffer.from(`GET /${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
        Buffer.from(`GET / HTTP/1.1\r\n${"X-A: b\r\n".repeat(3000)}\r\n`),
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
      ),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        // The request ends with the client's FIN, so the server answers (or not) and closes,
        // whatever the bytes: one that does neither is a finding, not "no response".
        const answer = await new Promise<string>((resolve, reject) => {
          const socket = net.connect(svc.port, "127.0.0.1");
          let text = "";
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`neither answered nor closed in 10 s: ${bytes.toString("latin1")}`));
          }, 10_000);
          socket.on("data", (chunk) => {
            text += chunk.toString("latin1");
          });
          socket.on("error", () => {});
          socket.once("close", () => {
            clearTimeout(timer);
            resolve(text);
          });
          socket.once("connect", () => socket.end(bytes));
        });
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
        count(status ? Number(status) : 0);
        total++;
        assert.ok(!status || Number(status) < 500, answer.slice(0, 200));
        // A refusal is a catalogue body, Node's own (431, 408, 400) included — unless it
        // answers a HEAD, which has none.
        const head = bytes.subarray(0, 5).toString("latin1");
        if (status && Number(status) >= 400 && !head.startsWith("HEAD ")) {
          const body = answer.slice(answer.indexOf("\r\n\r\n") + 4);
          assert.match(body, /^\{"code":"RT_ERR_[A-Z_]+","message":"/, answer.slice(0, 300));
        }
      }),
      { numRuns: RAW, seed: SEED, endOnFailure: true },
    );
  });

  it("afterwards: 10,000 requests, nothing ≥ 500, no stream or lease left, still serving", async () => {
    assert.equal(total, INJECTED + STREAMS + RAW);
    const summary = [...statuses.entries()].sort(([a], [b]) => a - b);
    console.log(
      `# fuzz statuses (0 = connection closed without a response): ${JSON.stringify(summary)}`,
    );
    assert.ok(
      summary.every(([status]) => status < 500),
      JSON.stringify(summary),
    );
    assert.equal(svc.service.hub.connectionCount, 0);
    const limits = svc.service.security.connectionLimits;
    await until(() => limits.ipCount("127.0.0.1") === 0, "every lease released");
    const health = await svc.service.app.inject({ method: "GET", url: "/healthz" });
    assert.equal(health.statusCode, 200);
  });
});
