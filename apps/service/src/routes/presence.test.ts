/** `GET /api/channels/:channel/presence` in embedded mode: access rules, snapshot, gapless join. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp1, type SseClient } from "@realtime/testkit/sse-client";

interface Snapshot {
  channel: string;
  users: { userId: string; userName: string; connections: number }[];
  cursor: string;
}

const presenceEvents = (stream: SseClient) =>
  stream.events
    .filter((e) => e.event === undefined)
    .map((e) => JSON.parse(e.data) as { type: string; userName: string; status: string })
    .filter((e) => e.type === "presence")
    .map((e) => `${e.status} ${e.userName}`);

describe("GET /api/channels/:channel/presence", () => {
  let svc: RunningService;
  const streams: SseClient[] = [];
  before(async () => {
    svc = await startService({ PRESENCE_GRACE_MS: "100" });
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await svc.stop();
  });

  const get = async (channel: string, token: string | null) => {
    const response = await svc.service.app.inject({
      method: "GET",
      url: `/api/channels/${encodeURIComponent(channel)}/presence`,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: response.statusCode, body: response.json() as Snapshot & { code?: string } };
  };
  const open = async (channel: string, token: string, lastEventId?: string) => {
    const query = lastEventId ? `&lastEventId=${lastEventId}` : "";
    const stream = await openHttp1(`${svc.url}/api/events?channel=${channel}${query}`, {
      authorization: `Bearer ${token}`,
    });
    streams.push(stream);
    return stream;
  };

  it("401 without a token, 400 for a bad name, 403 to whoever may not subscribe", async () => {
    const ada = await svc.login("Ada");
    const bob = await svc.login("Bob");
    assert.equal((await get("channel:x", null)).status, 401);
    for (const bad of ["room:x", "channel:", "channel:a b", "user:"]) {
      const res = await get(bad, ada.token);
      assert.equal(res.status, 400, bad);
      assert.equal(res.body.code, "RT_ERR_BAD_CHANNEL");
    }
    // Every signed-in user may subscribe to every channel:<id> room today, so the refusal to
    // show is another user's private channel, the one thing a user may not subscribe to.
    const other = await get(`user:${bob.user.id}`, ada.token);
    assert.equal(other.status, 403);
    assert.equal(other.body.code, "RT_ERR_CHANNEL_FORBIDDEN");
    const service = await svc.service.auth.issueServiceToken({ service: "w", scopes: ["publish"] });
    assert.equal((await get("channel:x", service)).status, 403);
    // Allowed, but private channels have no presence.
    const own = await get(`user:${ada.user.id}`, ada.token);
    assert.equal(own.status, 400);
    assert.equal(own.body.code, "RT_ERR_BAD_CHANNEL");
  });

  it("lists who is online, over tabs, and accepts a bare room id", async () => {
    const ada = await svc.login("Ada");
    const bob = await svc.login("Bob");
    assert.deepEqual((await get("channel:list", ada.token)).body.users, []);
    await open("channel:list", ada.token);
    await open("channel:list", ada.token);
    await open("channel:list", bob.token);
    await svc.service.presence.flush();
    const res = await get("list", bob.token);
    assert.equal(res.status, 200);
    assert.equal(res.body.channel, "channel:list");
    assert.deepEqual(
      res.body.users.toSorted((a, b) => a.userName.localeCompare(b.userName)),
      [
        { userId: ada.user.id, userName: "Ada", connections: 2 },
        { userId: bob.user.id, userName: "Bob", connections: 1 },
      ],
    );
    assert.match(res.body.cursor, /^1\.[0-9A-Za-z]{9,}$/);
  });

  it("the snapshot's cursor resumes the stream right after it: no presence event is missed", async () => {
    const ada = await svc.login("Ada");
    const bob = await svc.login("Bob");
    const carol = await svc.login("Carol");
    await open("channel:join", ada.token);
    await svc.service.presence.flush();
    const snapshot = (await get("channel:join", bob.token)).body;
    assert.deepEqual(
      snapshot.users.map((u) => u.userName),
      ["Ada"],
    );
    // Carol comes and goes before Bob's stream is open: Bob still gets both events.
    const carolStream = await open("channel:join", carol.token);
    await svc.service.presence.flush();
    carolStream.close();
    const bobStream = await open("channel:join", bob.token, snapshot.cursor);
    // Bob's own online and Carol's offline race (her grace period against his open): wait for
    // both, then for a marker published after every presence decision, so nothing else is on
    // its way when the list is checked.
    await bobStream.waitFor(() => {
      const seen = presenceEvents(bobStream);
      return seen.includes("offline Carol") && seen.includes("online Bob");
    }, 5_000);
    await svc.service.presence.flush();
    await svc.service.hub.publish("channel:join", { type: "marker" });
    await bobStream.waitFor((e) => e.event === undefined && JSON.parse(e.data).type === "marker");
    const seen = presenceEvents(bobStream);
    assert.deepEqual(seen.toSorted(), ["offline Carol", "online Bob", "online Carol"]);
    assert.ok(seen.indexOf("online Carol") < seen.indexOf("offline Carol"));
  });
});
