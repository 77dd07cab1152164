/**
 * Channel access across two pods on one Redis (started here): both pods take the same
 * decisions from the token's claim and from one `AUTHZ_URL` backend, and a grant the backend
 * withdraws closes the user's streams on both.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startAuthz, type TestAuthz } from "@realtime/testkit/authz";
import { ofType, openStream, postJson, type Stream, tokens } from "@realtime/testkit/http";
import { POD_SECRET, type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";

describe("access on two pods", { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let authz: TestAuthz;
  let pods: Pod[];
  const auth = tokens(Date.now, POD_SECRET);
  before(async () => {
    redis = await startRedis();
    authz = await startAuthz();
    pods = await withPods(2, {
      REDIS_URL: redis.url,
      AUTHZ_URL: authz.url,
      AUTHZ_CACHE_MS: "1000",
      CHANNEL_DEFAULT_ACCESS: "closed",
    });
  });
  after(async () => {
    await stopPods(pods ?? []);
    await authz?.stop();
    await redis?.stop();
  });

  const open = (pod: Pod, token: string, channel: string): Promise<Stream> =>
    openStream(`${pod.url}/api/events?channel=${encodeURIComponent(channel)}`, {
      authorization: `Bearer ${token}`,
    });

  async function statusOn(pod: Pod, token: string, channel: string): Promise<number> {
    const stream = await open(pod, token, channel);
    if (stream.status === 200) await stream.waitFor((e) => e.event === "ready");
    stream.close();
    return stream.status;
  }

  it("both pods decide alike: claim allows and denies, the backend allows and denies", async () => {
    const claim = await auth.issueUserToken({
      id: "u_claim",
      name: "Ada",
      grant: { subscribe: ["channel:team-*"], publish: ["channel:team-*"] },
    });
    const plain = await auth.issueUserToken({ id: "u_plain", name: "Bob" });
    authz.set("u_plain", "channel:yes", "subscribe", 200);
    authz.set("u_plain", "channel:no", "subscribe", 403);
    for (const pod of pods) {
      assert.equal(await statusOn(pod, claim, "channel:team-1"), 200);
      assert.equal(await statusOn(pod, claim, "channel:other"), 403);
      assert.equal(await statusOn(pod, plain, "channel:yes"), 200);
      assert.equal(await statusOn(pod, plain, "channel:no"), 403);
      assert.equal(await statusOn(pod, plain, "channel:unruled"), 403);
    }
  });

  it("a post allowed on one pod reaches an allowed stream on the other; a denied post publishes nothing", async () => {
    const [a, b] = pods as [Pod, Pod];
    const reader = await auth.issueUserToken({
      id: "u_reader",
      name: "Reader",
      grant: { subscribe: ["channel:team-x"], publish: [] },
    });
    const writer = await auth.issueUserToken({
      id: "u_writer",
      name: "Writer",
      grant: { subscribe: [], publish: ["channel:team-x"] },
    });
    const stream = await open(b, reader, "channel:team-x");
    await stream.waitFor((e) => e.event === "ready");
    // The reader may not post; the writer may.
    const refused = await postJson(`${a.url}/api/chat/messages`, reader, {
      channel: "team-x",
      content: "not allowed",
    });
    assert.equal(refused.status, 403);
    const posted = await postJson(`${a.url}/api/chat/messages`, writer, {
      channel: "team-x",
      content: "allowed",
    });
    assert.equal(posted.status, 204);
    const event = await stream.waitFor(ofType("chat"));
    assert.equal(JSON.parse(event.data).content, "allowed");
    assert.equal(stream.events.filter(ofType("chat")).length, 1);
    stream.close();
  });

  it("a grant the backend withdraws closes the user's streams on both pods (3503 naming it)", async () => {
    const token = await auth.issueUserToken({ id: "u_both", name: "Cy" });
    authz.set("u_both", "channel:shared", "subscribe", 200);
    const streams = await Promise.all(pods.map((pod) => open(pod, token, "channel:shared")));
    for (const stream of streams) await stream.waitFor((e) => e.event === "ready");
    authz.set("u_both", "channel:shared", "subscribe", 403);
    for (const stream of streams) {
      const close = await stream.waitFor((e) => e.event === "close", 10_000);
      assert.deepEqual(JSON.parse(close.data).channels, ["channel:shared"]);
      assert.equal(JSON.parse(close.data).code, 3503);
      await stream.ended;
    }
  });
});
