/**
 * Attack: exhausting streams — one user opening U+1 streams, one address opening I+1, and the
 * pod filled to P+1. The excess is refused before any stream byte (429
 * `RT_ERR_TOO_MANY_CONNECTIONS` or 503 `RT_ERR_AT_CAPACITY`, with `Retry-After`), counted in
 * `sse_connections_refused_total{reason}`, while a well-behaved client's stream on the same pod
 * keeps receiving. The cross-pod per-user count is in e2e/pods/redis-limits.int.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  metricValue,
  ofType,
  openStream,
  postJson,
  refusal,
  type Stream,
  until,
} from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";

const PER_USER = 2;
const PER_IP = 3;
const PER_POD = 6;

describe("connection limits (embedded)", () => {
  let svc: RunningService;
  let good: { token: string };
  let goodStream: Stream;
  const open: Stream[] = [];

  before(async () => {
    svc = await startService({
      MAX_CONNECTIONS_PER_USER: String(PER_USER),
      MAX_CONNECTIONS_PER_IP: String(PER_IP),
      MAX_CONNECTIONS: String(PER_POD),
    });
    good = await svc.login("Good");
    // The well-behaved client: its own user, its own address.
    goodStream = await stream(good.token, "127.0.0.9", "channel:lobby");
    assert.equal(goodStream.status, 200);
    open.length = 0; // not closed between tests
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  async function stream(token: string, localAddress: string, channel = "channel:limits") {
    const s = await openStream(
      `${svc.url}/api/events?channel=${channel}`,
      { authorization: `Bearer ${token}` },
      { localAddress },
    );
    if (s.status === 200) open.push(s);
    return s;
  }

  async function closeAll(): Promise<void> {
    for (const s of open.splice(0)) s.close();
    await until(() => svc.service.hub.connectionCount === 1, "streams closed");
    // Released only when the server saw each close.
    await until(() => svc.service.security.connectionLimits.ipCount("127.0.0.1") === 0, "ip freed");
  }

  async function goodStillReceives(content: string): Promise<void> {
    const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "lobby",
      content,
    });
    assert.equal(posted.status, 204);
    await goodStream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  async function refused(reason: string): Promise<number> {
    return metricValue(
      await svc.service.metrics.render(),
      "sse_connections_refused_total",
      `reason="${reason}"`,
    );
  }

  function assertRefused(s: Stream, status: number) {
    assert.equal(s.status, status);
    assert.match(String(s.headers["content-type"]), /^application\/json/);
    const retryAfter = Number(s.headers["retry-after"]);
    assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${s.headers["retry-after"]}`);
  }

  it("per user: stream U+1 is refused with 429; other users are unaffected", async () => {
    const { token } = await svc.login("Tabs");
    for (let i = 0; i < PER_USER; i++) {
      assert.equal((await stream(token, `127.0.1.${i + 1}`)).status, 200);
    }
    // From yet another address: the user is the limit, not the address.
    const extra = await stream(token, "127.0.1.9");
    assertRefused(extra, 429);
    assert.equal((await refusal(extra)).code, "RT_ERR_TOO_MANY_CONNECTIONS");
    assert.equal(await refused("per_user_limit"), 1);
    await goodStillReceives("after the per-user refusal");
    await closeAll();
    // Closing a stream frees its slot.
    assert.equal((await stream(token, "127.0.1.1")).status, 200);
    await closeAll();
  });

  it("per IP: stream I+1 from one address is refused; another address is unaffected", async () => {
    const users = await Promise.all(["A", "B", "C", "D"].map((name) => svc.login(name)));
    for (const user of users.slice(0, PER_IP)) {
      assert.equal((await stream(user.token, "127.0.0.1")).status, 200);
    }
    const last = users[PER_IP] as { token: string };
    const extra = await stream(last.token, "127.0.0.1");
    assertRefused(extra, 429);
    assert.equal((await refusal(extra)).code, "RT_ERR_TOO_MANY_CONNECTIONS");
    assert.equal(await refused("per_ip_limit"), 1);
    // The same user from another address gets in.
    assert.equal((await stream(last.token, "127.0.0.2")).status, 200);
    await goodStillReceives("after the per-IP refusal");
    await closeAll();
  });

  it("per pod: stream P+1 is refused with 503 RT_ERR_AT_CAPACITY; open streams go on", async () => {
    const users = await Promise.all(
      Array.from({ length: PER_POD }, (_, i) => svc.login(`Filler${i}`)),
    );
    // The good stream already holds one slot.
    for (let i = 0; i < PER_POD - 1; i++) {
      const s = await stream((users[i] as { token: string }).token, `127.0.2.${i + 1}`);
      assert.equal(s.status, 200);
    }
    const extra = await stream((users[PER_POD - 1] as { token: string }).token, "127.0.2.99");
    assertRefused(extra, 503);
    assert.equal((await refusal(extra)).code, "RT_ERR_AT_CAPACITY");
    assert.equal(await refused("RT_ERR_AT_CAPACITY"), 1);
    await goodStillReceives("at capacity");
    // A refusal by the hub releases the per-user and per-IP slots it had taken.
    const limits = svc.service.security.connectionLimits;
    await until(() => limits.ipCount("127.0.2.99") === 0, "the refused stream's slot freed");
    await closeAll();
  });
});
