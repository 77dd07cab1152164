/**
 * Attack: flooding the publishing routes (one user far over the limit, many users into one
 * room, a service token, dev-login from one address), opening and closing streams on fresh
 * rooms, reading presence in a loop. Each is refused with 429
 * `RT_ERR_RATE_LIMITED` + `Retry-After` while a well-behaved client on the same pod, at the
 * same time, posts and receives its events. Embedded mode (in-memory counters); the Redis-shared
 * budgets are in e2e/pods/redis-limits.int.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  metricValue,
  ofType,
  openStream,
  postJson,
  type Reply,
  refusal,
  request,
  type Stream,
  tokens,
  until,
} from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";

function assertRateLimited(reply: Reply, what: string): void {
  assert.equal(reply.status, 429, `${what}: ${reply.text}`);
  assert.equal(reply.json?.code, "RT_ERR_RATE_LIMITED", what);
  assert.equal(typeof reply.json?.message, "string");
  assert.match(String(reply.headers["content-type"]), /^application\/json/);
  const retryAfter = Number(reply.headers["retry-after"]);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, what);
}

describe("rate limits (embedded)", () => {
  let svc: RunningService;
  let good: { token: string; user: { id: string } };
  before(async () => {
    svc = await startService({
      RATE_LIMIT_WINDOW_MS: "60000",
      RATE_LIMIT_CHAT_MAX: "5",
      RATE_LIMIT_JOBS_MAX: "2",
      RATE_LIMIT_PUBLISH_MAX: "5",
      CHANNEL_PUBLISH_MAX: "8",
      JOBS_FRAMES: "1",
      JOBS_FRAME_SIZE: "16",
    });
    good = await svc.login("Good");
  });
  after(() => svc.stop());

  /** The well-behaved client: posts in its own room and sees its message arrive. */
  async function wellBehaved(room: string, content: string): Promise<void> {
    const stream = await openStream(`${svc.url}/api/events?channel=channel:${room}`, {
      authorization: `Bearer ${good.token}`,
    });
    try {
      assert.equal(stream.status, 200);
      const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
        channel: room,
        content,
      });
      assert.equal(posted.status, 204, posted.text);
      await stream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
    } finally {
      stream.close();
    }
  }

  it("one user at 10× the chat limit gets 429 + Retry-After; another user is unaffected", async () => {
    const { token } = await svc.login("Flooder");
    const flood = Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        postJson(`${svc.url}/api/chat/messages`, token, { channel: "flood", content: `m${i}` }),
      ),
    );
    const [replies] = await Promise.all([flood, wellBehaved("calm-chat", "hello")]);
    assert.equal(replies.filter((r) => r.status === 204).length, 5);
    const refused = replies.filter((r) => r.status !== 204);
    assert.equal(refused.length, 45);
    for (const reply of refused) assertRateLimited(reply, "chat flood");
    const metrics = await svc.service.metrics.render();
    assert.equal(metricValue(metrics, "http_requests_rate_limited_total", 'limit="chat"'), 45);
  });

  it("requests with no valid token are limited per address, not per (absent) user", async () => {
    const replies = await Promise.all(
      Array.from({ length: 8 }, () =>
        postJson(
          `${svc.url}/api/chat/messages`,
          "not-a-token",
          { channel: "x", content: "y" },
          {
            localAddress: "127.0.0.3",
          },
        ),
      ),
    );
    assert.equal(replies.filter((r) => r.status === 401).length, 5);
    for (const reply of replies.filter((r) => r.status !== 401)) assertRateLimited(reply, "anon");
    await wellBehaved("calm-anon", "still fine");
  });

  it("many users into one room: the room's broadcast budget runs out, other rooms go on", async () => {
    const users = await Promise.all(["R1", "R2", "R3"].map((name) => svc.login(name)));
    // 3 users × 3 posts = 9 > CHANNEL_PUBLISH_MAX (8), each user under its own limit (5).
    const replies = await Promise.all(
      users.flatMap(({ token }, u) =>
        [0, 1, 2].map((i) =>
          postJson(`${svc.url}/api/chat/messages`, token, {
            channel: "channel:hot",
            content: `${u}-${i}`,
          }),
        ),
      ),
    );
    await wellBehaved("calm-room", "other rooms are fine");
    assert.equal(replies.filter((r) => r.status === 204).length, 8);
    const [refused] = replies.filter((r) => r.status !== 204);
    assert.ok(refused);
    assertRateLimited(refused, "channel budget");
    assert.match(String(refused.json?.message), /channel:hot is over its broadcast budget/);
    // The publish API spends the same room's budget.
    const service = await tokens().issueServiceToken({ service: "svc-hot", scopes: ["publish"] });
    assertRateLimited(
      await postJson(`${svc.url}/api/publish`, service, {
        channel: "channel:hot",
        event: { type: "note", message: "x" },
      }),
      "publish into an exhausted room",
    );
    const metrics = await svc.service.metrics.render();
    assert.equal(metricValue(metrics, "http_requests_rate_limited_total", 'limit="channel"'), 2);
  });

  it("anonymous requests do not spend a room's budget", async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        postJson(
          `${svc.url}/api/chat/messages`,
          null,
          { channel: "quiet", content: `${i}` },
          {
            localAddress: "127.0.0.4",
          },
        ),
      ),
    );
    assert.ok(replies.every((r) => r.status === 401 || r.status === 429));
    // The room's whole budget is still there for its members.
    await wellBehaved("quiet", "budget intact");
  });

  it("a service token over the publish limit gets 429; another service publishes", async () => {
    const issuer = tokens();
    const noisy = await issuer.issueServiceToken({ service: "noisy", scopes: ["publish"] });
    const quiet = await issuer.issueServiceToken({ service: "quiet", scopes: ["publish"] });
    const event = { type: "note", message: "x" };
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        postJson(`${svc.url}/api/publish`, noisy, { channel: `channel:svc${i}`, event }),
      ),
    );
    const ok = await postJson(`${svc.url}/api/publish`, quiet, { channel: "channel:svc", event });
    assert.equal(ok.status, 202, ok.text);
    assert.equal(replies.filter((r) => r.status === 202).length, 5);
    for (const reply of replies.filter((r) => r.status !== 202)) {
      assertRateLimited(reply, "publish flood");
    }
  });

  it("jobs: a user over the job-submission limit gets 429; another user starts a job", async () => {
    const { token } = await svc.login("JobSpammer");
    // Invalid bodies still count: the limit is checked before the body is read.
    const replies = [];
    for (let i = 0; i < 4; i++) {
      replies.push(await postJson(`${svc.url}/api/generate/video`, token, { prompt: "" }));
    }
    assert.deepEqual(
      replies.map((r) => r.status),
      [400, 400, 429, 429],
    );
    for (const reply of replies.slice(2)) assertRateLimited(reply, "jobs");
    const started = await postJson(`${svc.url}/api/generate/video`, good.token, {
      prompt: "a calm sea",
    });
    assert.equal(started.status, 202, started.text);
  });
});

describe("dev-login rate limit (per client IP)", () => {
  let svc: RunningService;
  before(async () => {
    svc = await startService({ RATE_LIMIT_WINDOW_MS: "60000", RATE_LIMIT_LOGIN_MAX: "3" });
  });
  after(() => svc.stop());

  it("one address is refused after the limit; another address logs in", async () => {
    const login = (name: string, localAddress: string) =>
      postJson(`${svc.url}/api/auth/dev-login`, null, { name }, { localAddress });
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await login(`Bot${i}`, "127.0.0.5"));
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 429, 429],
    );
    for (const reply of replies.slice(3)) assertRateLimited(reply, "dev-login");
    const other = await login("Human", "127.0.0.6");
    assert.equal(other.status, 200, other.text);
    // Reads are not limited.
    assert.equal((await request(`${svc.url}/healthz`, { localAddress: "127.0.0.5" })).status, 200);
  });
});

describe("stream opens and presence reads (embedded)", () => {
  const STREAMS = 5;
  const PRESENCE = 5;
  let svc: RunningService;
  let good: { token: string };
  before(async () => {
    svc = await startService({
      RATE_LIMIT_WINDOW_MS: "60000",
      RATE_LIMIT_STREAMS_MAX: String(STREAMS),
      RATE_LIMIT_PRESENCE_MAX: String(PRESENCE),
      MAX_CONNECTIONS_PER_USER: "2",
    });
    good = await svc.login("Good");
  });
  after(() => svc.stop());

  const events = (token: string, room: string) =>
    openStream(`${svc.url}/api/events?channel=channel:${room}`, {
      authorization: `Bearer ${token}`,
    });
  const presence = (token: string, room: string) =>
    request(`${svc.url}/api/channels/channel:${room}/presence`, {
      headers: { authorization: `Bearer ${token}` },
    });
  const metric = async (name: string, labels: string) =>
    metricValue(await svc.service.metrics.render(), name, labels);

  /** The well-behaved user: a stream of its own (one open), a post, the post received. */
  async function wellBehaved(room: string, content: string): Promise<void> {
    const stream = await events(good.token, room);
    try {
      assert.equal(stream.status, 200);
      const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
        channel: room,
        content,
      });
      assert.equal(posted.status, 204, posted.text);
      await stream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
    } finally {
      stream.close();
    }
  }

  it("opening and closing streams on fresh rooms: 429 past the limit, before the hub joins anything", async () => {
    const { token } = await svc.login("Churner");
    const onlineBefore = await metric("realtime_presence_events_total", 'status="online"');
    const refusedBefore = await metric(
      "sse_connections_refused_total",
      'reason="RT_ERR_RATE_LIMITED"',
    );
    const churn = async () => {
      const statuses: Reply[] = [];
      for (let i = 0; i < STREAMS * 4; i++) {
        const stream = await events(token, `fresh-${i}`);
        if (stream.status === 200) {
          stream.close();
          // The slot is released when the server sees the close (the per-user cap is 2).
          await until(() => svc.service.hub.connectionCount <= 1, "the stream closed");
          statuses.push({ status: 200, headers: stream.headers, text: "", json: null });
        } else {
          await stream.ended;
          const text = stream.text();
          statuses.push({
            status: stream.status,
            headers: stream.headers,
            text,
            json: JSON.parse(text),
          });
        }
      }
      return statuses;
    };
    const [replies] = await Promise.all([churn(), wellBehaved("calm-streams", "still here")]);
    assert.deepEqual(
      replies.map((r) => r.status),
      [...Array(STREAMS).fill(200), ...Array(STREAMS * 3).fill(429)],
    );
    for (const reply of replies.slice(STREAMS)) assertRateLimited(reply, "stream churn");
    assert.equal(await metric("http_requests_rate_limited_total", 'limit="streams"'), STREAMS * 3);
    assert.equal(
      (await metric("sse_connections_refused_total", 'reason="RT_ERR_RATE_LIMITED"')) -
        refusedBefore,
      STREAMS * 3,
    );
    // Only the admitted opens joined a room: the churner's 5 and the well-behaved user's 1.
    const online = async () =>
      (await metric("realtime_presence_events_total", 'status="online"')) - onlineBefore;
    await until(async () => (await online()) >= STREAMS + 1, "the admitted opens' presence");
    // And no more: every decision presence still had queued is out before it is counted.
    await svc.service.presence.flush();
    assert.equal(
      (await metric("realtime_presence_events_total", 'status="online"')) - onlineBefore,
      STREAMS + 1,
    );
  });

  it("the limit is checked before the stream admission: past it, no per-user slot is asked for", async () => {
    const { token } = await svc.login("Hoarder");
    const held: Stream[] = [];
    const codes: string[] = [];
    try {
      for (let i = 0; i < STREAMS + 3; i++) {
        const stream = await events(token, "hoard");
        if (stream.status === 200) {
          held.push(stream);
          codes.push("200");
        } else {
          codes.push(String((await refusal(stream)).code));
        }
      }
      // Two fit under MAX_CONNECTIONS_PER_USER; the admission refuses the next three (they
      // still spent the rate budget); after the budget, the rate limit answers first.
      assert.deepEqual(codes, [
        "200",
        "200",
        "RT_ERR_TOO_MANY_CONNECTIONS",
        "RT_ERR_TOO_MANY_CONNECTIONS",
        "RT_ERR_TOO_MANY_CONNECTIONS",
        "RT_ERR_RATE_LIMITED",
        "RT_ERR_RATE_LIMITED",
        "RT_ERR_RATE_LIMITED",
      ]);
      await wellBehaved("calm-hoard", "unaffected");
    } finally {
      for (const stream of held) stream.close();
    }
  });

  it("presence reads: one user is refused past the limit; another user reads and chats", async () => {
    const { token } = await svc.login("Peeker");
    const replies = await Promise.all(
      Array.from({ length: PRESENCE * 4 }, (_, i) => presence(token, `peek-${i}`)),
    );
    assert.equal(replies.filter((r) => r.status === 200).length, PRESENCE);
    const refused = replies.filter((r) => r.status !== 200);
    assert.equal(refused.length, PRESENCE * 3);
    for (const reply of refused) assertRateLimited(reply, "presence flood");
    assert.equal(
      await metric("http_requests_rate_limited_total", 'limit="presence"'),
      PRESENCE * 3,
    );
    const other = await presence(good.token, "peek-0");
    assert.equal(other.status, 200, other.text);
    await wellBehaved("calm-presence", "reads are fine");
  });

  it("no HEAD way around them: every rate-limited GET route's HEAD twin is refused or limited", async () => {
    const { token } = await svc.login("Header");
    const head = (path: string) =>
      request(`${svc.url}${path}`, {
        method: "HEAD",
        headers: { authorization: `Bearer ${token}` },
      });
    // The stream and presence routes have no HEAD twin at all.
    for (const path of ["/api/events?channel=channel:h", "/api/channels/channel:h/presence"]) {
      const reply = await head(path);
      assert.equal(reply.status, 405, path);
      assert.equal(reply.headers.allow, "GET", path);
    }
    // Fastify's route table, as registered: no HEAD twin for either.
    for (const url of ["/api/events", "/api/channels/:channel/presence"]) {
      assert.equal(svc.service.app.hasRoute({ method: "HEAD", url }), false, url);
    }
    const reads = await Promise.all(
      Array.from({ length: PRESENCE }, (_, i) => presence(token, `h-${i}`)),
    );
    assert.ok(
      reads.every((r) => r.status === 200),
      "the HEADs spent nothing of the GET's budget",
    );
  });
});

describe("channels named by stream opens (embedded)", () => {
  const CHANNELS = 40;
  let svc: RunningService;
  before(async () => {
    svc = await startService({
      RATE_LIMIT_WINDOW_MS: "60000",
      RATE_LIMIT_STREAMS_MAX: "0", // only the channel budget here
      RATE_LIMIT_STREAM_CHANNELS_MAX: String(CHANNELS),
    });
  });
  after(() => svc.stop());

  const open = async (token: string, rooms: string[]) => {
    const query = rooms.map((r) => `channel=channel:${r}`).join("&");
    const stream = await openStream(`${svc.url}/api/events?${query}`, {
      authorization: `Bearer ${token}`,
    });
    if (stream.status === 200) stream.close();
    return stream;
  };

  it("a stream of n channels spends n: 16-room streams run out after 2, one-room streams after 40", async () => {
    const wide = await svc.login("Wide");
    const narrow = await svc.login("Narrow");
    const rooms = (from: number) => Array.from({ length: 16 }, (_, i) => `w${from + i}`);
    const statuses: number[] = [];
    let refused: Stream | null = null;
    for (let i = 0; i < 4; i++) {
      const stream = await open(wide.token, rooms(i * 16));
      statuses.push(stream.status);
      if (stream.status !== 200) refused ??= stream;
    }
    // 16 + 16 = 32 fit in 40; the third would make 48.
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    assert.ok(refused);
    const body = await refusal(refused);
    assert.equal(body.code, "RT_ERR_RATE_LIMITED");
    assert.match(String(body.message), /channels/);
    assert.ok(Number(refused.headers["retry-after"]) >= 1);
    assert.equal(
      metricValue(
        await svc.service.metrics.render(),
        "http_requests_rate_limited_total",
        'limit="stream_channels"',
      ),
      2,
    );
    // Another user, one room a stream: their own budget, 40 opens.
    const narrowStatuses: number[] = [];
    for (let i = 0; i < CHANNELS + 1; i++)
      narrowStatuses.push((await open(narrow.token, [`n${i}`])).status);
    assert.deepEqual(narrowStatuses, [...Array(CHANNELS).fill(200), 429]);
  });
});

describe("stream opens per client IP (embedded)", () => {
  it("off by default: many users behind one address all connect", async () => {
    const svc = await startService({ RATE_LIMIT_WINDOW_MS: "60000" });
    const held: Stream[] = [];
    try {
      // More users than the per-user limit's default opens from one NAT address, at once.
      const users = await Promise.all(Array.from({ length: 40 }, (_, i) => svc.login(`Nat${i}`)));
      const streams = await Promise.all(
        users.map(({ token }) =>
          openStream(
            `${svc.url}/api/events?channel=channel:office`,
            { authorization: `Bearer ${token}` },
            { localAddress: "127.0.0.10" },
          ),
        ),
      );
      held.push(...streams);
      assert.deepEqual(
        streams.map((s) => s.status),
        Array(40).fill(200),
      );
    } finally {
      for (const stream of held) stream.close();
      await svc.stop();
    }
  });

  it("RATE_LIMIT_STREAMS_PER_IP_MAX: one address is refused past it; another address connects", async () => {
    const svc = await startService({
      RATE_LIMIT_WINDOW_MS: "60000",
      RATE_LIMIT_STREAMS_PER_IP_MAX: "4",
    });
    const held: Stream[] = [];
    try {
      const users = await Promise.all(Array.from({ length: 7 }, (_, i) => svc.login(`Bot${i}`)));
      const statuses: number[] = [];
      const refused: Reply[] = [];
      for (const { token } of users) {
        const stream = await openStream(
          `${svc.url}/api/events?channel=channel:ip-room`,
          { authorization: `Bearer ${token}` },
          { localAddress: "127.0.0.11" },
        );
        statuses.push(stream.status);
        if (stream.status === 200) {
          held.push(stream);
          continue;
        }
        await stream.ended;
        const text = stream.text();
        refused.push({
          status: stream.status,
          headers: stream.headers,
          text,
          json: JSON.parse(text),
        });
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429]);
      for (const reply of refused) {
        assertRateLimited(reply, "per-IP opens");
        assert.match(String(reply.json?.message), /from this address/);
      }
      const text = await svc.service.metrics.render();
      assert.equal(
        metricValue(text, "http_requests_rate_limited_total", 'limit="streams_per_ip"'),
        3,
      );
      assert.equal(
        metricValue(text, "sse_connections_refused_total", 'reason="RT_ERR_RATE_LIMITED"'),
        3,
      );
      // Another address, the same moment: a well-behaved user streams and chats.
      const good = await svc.login("Elsewhere");
      const stream = await openStream(
        `${svc.url}/api/events?channel=channel:ip-calm`,
        { authorization: `Bearer ${good.token}` },
        { localAddress: "127.0.0.12" },
      );
      held.push(stream);
      assert.equal(stream.status, 200);
      const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
        channel: "ip-calm",
        content: "hi",
      });
      assert.equal(posted.status, 204, posted.text);
      await stream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === "hi");
    } finally {
      for (const stream of held) stream.close();
      await svc.stop();
    }
  });
});
