/**
 * Attack: flooding the publishing routes (one user far over the limit, many users into one
 * room, a service token, dev-login from one address). Each is refused with 429
 * `RT_ERR_RATE_LIMITED` + `Retry-After` while a well-behaved client on the same pod, at the
 * same time, posts and receives its events. Embedded mode (in-memory counters); the Redis-shared
 * budgets are in redis-limits.int.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RunningService, startService } from "../testing/harness.ts";
import {
  metricValue,
  ofType,
  openStream,
  postJson,
  type Reply,
  request,
  tokens,
} from "./test-kit.ts";

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
