/**
 * The HTTP surface around the routes, attacked over real sockets:
 *
 * - `HEAD /api/events` opened a whole stream — counted, a presence join, one of the user's
 *   slots — that the client never sees (a HEAD response has no body): now 405.
 * - Node's own refusals (over-long headers, headers too slow, garbage, oversized chunk
 *   extensions) answered with Fastify's default body, not the catalogue's `{ code, message }`.
 * - Unknown query parameters were accepted on most routes (`POST /api/chat/messages?user=x` →
 *   204) though the docs promise 400.
 *
 * Each refusal is asserted with its status and catalogue body (HEAD has none, by protocol),
 * while a well-behaved client on the same pod posts and receives.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import {
  metricValue,
  ofType,
  openStream,
  postJson,
  request,
  type Stream,
} from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";

/**
 * Writes `bytes` on a fresh connection and resolves with everything received until the server
 * closes it, or until `deadlineMs` (then the connection is cut).
 */
function exchange(port: number, bytes: string | Buffer, deadlineMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    const timer = setTimeout(() => socket.destroy(), deadlineMs);
    socket.on("data", (chunk) => {
      received += chunk.toString("latin1");
    });
    socket.on("error", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.once("connect", () => socket.write(bytes));
  });
}

/** Splits raw HTTP/1.1 responses: status, lower-cased headers and whatever follows the head. */
function parseHead(text: string): { status: number; headers: Map<string, string>; rest: string } {
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end > 0, `a complete response head: ${JSON.stringify(text.slice(0, 300))}`);
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(statusLine.split(" ")[1]), headers, rest: text.slice(end + 4) };
}

describe("HEAD on the stream route", () => {
  let svc: RunningService;
  let good: { token: string };
  let goodStream: Stream;

  before(async () => {
    svc = await startService({ PRESENCE_GRACE_MS: "100" });
    good = await svc.login("Good");
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:lobby`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  async function goodStillWorks(content: string): Promise<void> {
    const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "lobby",
      content,
    });
    assert.equal(posted.status, 204);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  it("HEAD /api/events is 405 (Allow: GET, no body) and opens nothing", async () => {
    const attacker = await svc.login("Header");
    const cookie = `rt_session=${attacker.token}`;
    const online = async () =>
      metricValue(
        await svc.service.metrics.render(),
        "realtime_presence_events_total",
        'status="online"',
      );
    const onlineBefore = await online();
    for (const credentials of [
      `Authorization: Bearer ${attacker.token}`,
      `Cookie: ${cookie}\r\nSec-Fetch-Site: same-origin`,
    ]) {
      // A second request pipelined behind the HEAD: its response must follow the HEAD's head
      // at once — no body in between, and no stream holding the connection.
      const text = await exchange(
        svc.port,
        `HEAD /api/events?channel=channel:lobby HTTP/1.1\r\nHost: x\r\n${credentials}\r\n\r\n` +
          "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      );
      const head = parseHead(text);
      assert.equal(head.status, 405, text.slice(0, 300));
      assert.equal(head.headers.get("allow"), "GET");
      assert.match(String(head.headers.get("content-type")), /^application\/json/);
      assert.match(head.rest, /^HTTP\/1\.1 200 /, "the next response follows the head directly");
      assert.match(head.rest, /"status":"ok"/);
    }
    // Nothing was opened: no stream, no slot, no presence in the room.
    assert.equal(svc.service.hub.connectionCount, 1, "only the good client's stream");
    assert.equal(svc.service.security.connectionLimits.userCount(attacker.user.id), 0);
    // Presence publishes its decisions in batches: once they are out, the good client's
    // message arriving proves that everything published before it has arrived.
    await svc.service.presence.flush();
    await goodStillWorks("after HEAD");
    const joined = goodStream.events
      .filter(ofType("presence"))
      .filter((e) => JSON.parse(e.data).userId === attacker.user.id);
    assert.deepEqual(joined, [], "no presence event for the HEAD's user");
    assert.equal(await online(), onlineBefore, "no presence event published at all");
  });

  it("the other GET routes keep a HEAD twin that costs what their GET costs, and ends; presence has none", async () => {
    const { token } = await svc.login("Prober");
    const auth = { authorization: `Bearer ${token}` };
    for (const path of ["/api/auth/me", "/healthz", "/readyz"]) {
      const head = await request(`${svc.url}${path}`, { method: "HEAD", headers: auth });
      assert.equal(head.status, 200, path);
      assert.equal(head.text, "", `${path}: no body`);
    }
    // A presence HEAD would read a whole snapshot for nothing, outside the presence limit.
    const presence = await request(`${svc.url}/api/channels/lobby/presence`, {
      method: "HEAD",
      headers: auth,
    });
    assert.equal(presence.status, 405);
    assert.equal(presence.headers.allow, "GET");
    assert.equal(svc.service.hub.connectionCount, 1, "nothing stays open");
    await goodStillWorks("after other HEADs");
  });
});

describe("Node's own refusals", () => {
  let svc: RunningService;
  let good: { token: string };
  let goodStream: Stream;

  before(async () => {
    // Short header timeout, so the slow-headers case is answered quickly.
    svc = await startService({ HEADERS_TIMEOUT_MS: "400", REQUEST_TIMEOUT_MS: "800" });
    good = await svc.login("Good");
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:raw`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  const cases: [string, string, number, string][] = [
    [
      "over-long headers",
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
      431,
      "RT_ERR_HEADERS_TOO_LARGE",
    ],
    [
      "headers that never end",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a",
      408,
      "RT_ERR_REQUEST_TIMEOUT",
    ],
    ["garbage", "\u0016\u0003\u0001 not http at all\r\n\r\n", 400, "RT_ERR_BAD_REQUEST"],
    [
      "a chunk extension past Node's 16 KiB",
      "POST /api/chat/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        `Transfer-Encoding: chunked\r\n\r\n2;${"e".repeat(20_000)}\r\n{}\r\n0\r\n\r\n`,
      413,
      "RT_ERR_PAYLOAD_TOO_LARGE",
    ],
  ];
  for (const [what, bytes, status, code] of cases) {
    it(`${what}: ${status} ${code}, a catalogue body, the connection closed`, async () => {
      // The well-behaved client posts while the refused connection is being answered.
      const [text] = await Promise.all([
        exchange(svc.port, bytes),
        goodStillWorks(svc, good, goodStream, what),
      ]);
      const head = parseHead(text);
      assert.equal(head.status, status, text.slice(0, 300));
      assert.match(String(head.headers.get("content-type")), /^application\/json/);
      assert.equal(head.headers.get("connection"), "close");
      assert.equal(Number(head.headers.get("content-length")), Buffer.byteLength(head.rest));
      const body = JSON.parse(head.rest) as { code: string; message: string };
      assert.deepEqual(Object.keys(body).sort(), ["code", "message"]);
      assert.equal(body.code, code);
      assert.ok(body.message.length > 0);
    });
  }
});

async function goodStillWorks(
  svc: RunningService,
  good: { token: string },
  stream: Stream,
  content: string,
  channel = "raw",
): Promise<void> {
  const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, { channel, content });
  assert.equal(posted.status, 204);
  await stream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
}

describe("unknown query parameters", () => {
  let svc: RunningService;
  let good: { token: string; user: { id: string } };
  let goodStream: Stream;

  before(async () => {
    svc = await startService();
    good = await svc.login("Good");
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:query`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  /** A body each route would accept, so that only the query string is wrong. */
  const BODIES: Record<string, unknown> = {
    "POST /api/chat/messages": { channel: "query", content: "smuggled" },
    "POST /api/publish": { channel: "channel:query", event: { type: "smuggled" } },
    "POST /api/auth/dev-login": { name: "Smuggler" },
    "POST /api/generate/video": { prompt: "smuggled" },
  };

  it("every API route refuses one: 400 naming it, nothing done (chat ?user= → 204 before)", async () => {
    // Every route, as the OpenAPI document generated from the routes lists them.
    const spec = (await svc.service.app.inject({ url: "/docs/json" })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(spec.paths)
      .filter(([path]) => path.startsWith("/api/"))
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    assert.ok(routes.length >= 10, routes.join(", "));
    const service = await svc.service.auth.issueServiceToken({
      service: "backend",
      scopes: ["publish"],
    });
    for (const route of routes) {
      const [method = "", template = ""] = route.split(" ");
      const path = template
        .replace("{channel}", "query")
        .replace("{jobId}", "job_000000000000000000000000");
      const query =
        path === "/api/events" ? "?channel=channel:query&user=u_other" : "?user=u_other";
      const body = BODIES[route];
      const token = route === "POST /api/publish" ? service : good.token;
      const reply = await request(`${svc.url}${path}${query}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined && { "content-type": "application/json" }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      assert.equal(reply.status, 400, `${route}: ${reply.text}`);
      assert.equal(reply.json?.code, "RT_ERR_BAD_REQUEST", route);
      assert.equal(reply.json?.message, 'querystring has unknown field "user"', route);
    }
    // Nothing went out: the good client's own post arrives, and nothing smuggled before it.
    await goodStillWorks(svc, good, goodStream, "after unknown parameters", "query");
    const smuggled = goodStream.events.filter(
      (e) => e.event === undefined && /smuggled/.test(e.data),
    );
    assert.deepEqual(smuggled, []);
  });

  it("routes outside the API ignore them: the page, health and metrics", async () => {
    for (const path of [
      "/?utm_source=mail",
      "/healthz?probe=1",
      "/readyz?probe=1",
      "/metrics?x=1",
    ]) {
      const reply = await request(`${svc.url}${path}`);
      assert.ok(reply.status === 200 || reply.status === 503, `${path}: ${reply.status}`);
    }
  });
});
