/**
 * `GET /api/channels/:channel/messages` in embedded mode: refusals, pages in order with the ids
 * a stream carries, paging back without overlap or hole, the exact handoff to a stream, the
 * cap on `limit`, retention, and the per-user rate limit.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp1, type SseClient } from "@realtime/testkit/sse-client";

interface Page {
  channel: string;
  events: { id: string; event: { type: string; content?: string } }[];
  cursor: string;
  previous: string | null;
  reset?: string;
  code?: string;
  message?: string;
}

const chats = (stream: SseClient) =>
  stream.events
    .filter((e) => e.event === undefined)
    .map((e) => ({ id: e.id, event: JSON.parse(e.data) as { type: string; content?: string } }))
    .filter((e) => e.event.type === "chat");

const contents = (events: readonly { event: { content?: string } }[]) =>
  events.map((e) => e.event.content);

describe("GET /api/channels/:channel/messages", () => {
  let svc: RunningService;
  const streams: SseClient[] = [];
  before(async () => {
    svc = await startService({ RATE_LIMIT_CHAT_MAX: "0", RATE_LIMIT_HISTORY_MAX: "0" });
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await svc.stop();
  });

  const get = async (
    service: RunningService,
    channel: string,
    token: string | null,
    query = "",
  ) => {
    const response = await service.service.app.inject({
      method: "GET",
      url: `/api/channels/${encodeURIComponent(channel)}/messages${query}`,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: response.json() as Page,
    };
  };
  const open = async (channel: string, token: string, lastEventId?: string) => {
    const query = lastEventId ? `&lastEventId=${encodeURIComponent(lastEventId)}` : "";
    const stream = await openHttp1(
      `${svc.url}/api/events?channel=${encodeURIComponent(channel)}${query}`,
      { authorization: `Bearer ${token}` },
    );
    streams.push(stream);
    assert.equal(stream.status, 200, stream.text());
    return stream;
  };
  const say = async (token: string, room: string, ...lines: string[]) => {
    for (const content of lines) {
      const posted = await svc.post("/api/chat/messages", token, { channel: room, content });
      assert.equal(posted.status, 204, JSON.stringify(posted.body));
    }
  };
  const lines = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  it("401 without a token; 400 for a bad name, limit or cursor; 403 for another user's channel", async () => {
    const ada = await svc.login("Ada");
    const bob = await svc.login("Bob");
    assert.equal((await get(svc, "channel:x", null)).status, 401);
    for (const bad of ["room:x", "channel:", "channel:a b"]) {
      const res = await get(svc, bad, ada.token);
      assert.equal(res.status, 400, bad);
      assert.equal(res.body.code, "RT_ERR_BAD_CHANNEL");
    }
    for (const query of ["?limit=0", "?limit=-1", "?limit=x", "?before=nope", "?user=x"]) {
      const res = await get(svc, "channel:x", ada.token, query);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.code, "RT_ERR_BAD_REQUEST", query);
      assert.ok(res.body.message, query);
    }
    // A cursor of another channel says nothing about this one.
    const other = await get(svc, "channel:elsewhere", ada.token);
    const wrong = await get(svc, "channel:x", ada.token, `?before=${other.body.cursor}`);
    assert.equal(wrong.status, 400);
    assert.match(wrong.body.message ?? "", /not a cursor of channel:x/);
    const forbidden = await get(svc, `user:${bob.user.id}`, ada.token);
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.code, "RT_ERR_CHANNEL_FORBIDDEN");
    // One's own private channel has history like any other.
    const own = await get(svc, `user:${ada.user.id}`, ada.token);
    assert.equal(own.status, 200);
    assert.equal(own.headers["cache-control"], "no-store");
  });

  it("an empty room: no events, nothing older, and its cursor still sees the first event", async () => {
    const ada = await svc.login("Ada");
    const page = await get(svc, "empty", ada.token);
    assert.equal(page.status, 200);
    assert.deepEqual(page.body.events, []);
    assert.equal(page.body.previous, null);
    assert.equal(page.body.channel, "channel:empty");
    const stream = await open("channel:empty", ada.token, page.body.cursor);
    await say(ada.token, "empty", "first");
    await stream.waitForCount(1, (e) => e.event === undefined && e.data.includes('"chat"'));
    assert.deepEqual(contents(chats(stream)), ["first"]);
    assert.equal(stream.events.filter((e) => e.event === "reset").length, 0);
  });

  it("returns the last events oldest first, with the ids a stream carried, and pages back without overlap or hole", async () => {
    const ada = await svc.login("Ada");
    const live = await open("channel:paged", ada.token);
    await say(ada.token, "paged", ...lines("m", 25));
    await live.waitForCount(25, (e) => e.event === undefined && e.data.includes('"chat"'));
    // Everything the channel carried: Ada's presence, then her 25 messages.
    const carried = live.events
      .filter((e) => e.event === undefined)
      .map((e) => ({ id: e.id, event: JSON.parse(e.data) as { type: string } }));
    assert.equal(carried.length, 26);

    const newest = await get(svc, "paged", ada.token, "?limit=10");
    assert.equal(newest.status, 200);
    assert.deepEqual(newest.body.events, carried.slice(16));
    assert.equal(newest.body.cursor, carried[25]?.id, "the cursor is the last event's id");
    assert.equal(newest.body.previous, carried[16]?.id);

    const middle = await get(svc, "paged", ada.token, `?limit=10&before=${newest.body.previous}`);
    assert.deepEqual(middle.body.events, carried.slice(6, 16));
    assert.equal(middle.body.cursor, carried[15]?.id, "an older page ends where the next begins");
    const oldest = await get(svc, "paged", ada.token, `?limit=10&before=${middle.body.previous}`);
    assert.deepEqual(oldest.body.events, carried.slice(0, 6));
    assert.equal(oldest.body.previous, null, "the channel's first event: nothing older");
    // Default page: the last 50, here all of them.
    assert.deepEqual((await get(svc, "paged", ada.token)).body.events, carried);
  });

  it("a stream opened from the cursor gets exactly what came after the page", async () => {
    const ada = await svc.login("Ada");
    await say(ada.token, "handoff", ...lines("old", 8));
    const page = await get(svc, "handoff", ada.token, "?limit=5");
    assert.deepEqual(contents(page.body.events), ["old3", "old4", "old5", "old6", "old7"]);
    // Said between the read and the stream: the stream replays them.
    await say(ada.token, "handoff", "gap0", "gap1", "gap2");
    const stream = await open("channel:handoff", ada.token, page.body.cursor);
    await stream.waitForCount(3, (e) => e.event === undefined && e.data.includes('"chat"'));
    await say(ada.token, "handoff", "live0");
    await stream.waitForCount(4, (e) => e.event === undefined && e.data.includes('"chat"'));
    assert.deepEqual(contents(chats(stream)), ["gap0", "gap1", "gap2", "live0"]);
    assert.equal(stream.events.filter((e) => e.event === "reset").length, 0);
    // And the history read now ends where the stream is.
    const again = await get(svc, "handoff", ada.token, "?limit=1");
    assert.equal(again.body.cursor, stream.lastEventId());
  });

  it("caps limit at 100", async () => {
    const ada = await svc.login("Ada");
    await say(ada.token, "capped", ...lines("c", 105));
    const page = await get(svc, "capped", ada.token, "?limit=1000000000");
    assert.equal(page.status, 200);
    assert.equal(page.body.events.length, 100);
    assert.deepEqual(contents(page.body.events), lines("c", 105).slice(5));
  });

  it("keeps HISTORY_MAX_LENGTH events: older ones are gone, and nothing claims otherwise", async () => {
    const small = await startService({ HISTORY_MAX_LENGTH: "5", RATE_LIMIT_CHAT_MAX: "0" });
    try {
      const ada = await small.login("Ada");
      for (const content of lines("r", 8)) {
        assert.equal(
          (await small.post("/api/chat/messages", ada.token, { channel: "kept", content })).status,
          204,
        );
      }
      const page = await get(small, "kept", ada.token, "?limit=10");
      assert.deepEqual(contents(page.body.events), ["r3", "r4", "r5", "r6", "r7"]);
      assert.equal(page.body.previous, null, "trimmed: nothing older to page to");
    } finally {
      await small.stop();
    }
  });

  it("limits reads per user (RATE_LIMIT_HISTORY_MAX) with a 429 and Retry-After", async () => {
    const limited = await startService({ RATE_LIMIT_HISTORY_MAX: "2" });
    try {
      const ada = await limited.login("Ada");
      const bob = await limited.login("Bob");
      assert.equal((await get(limited, "r", ada.token)).status, 200);
      assert.equal((await get(limited, "r", ada.token)).status, 200);
      const refused = await get(limited, "r", ada.token);
      assert.equal(refused.status, 429);
      assert.equal(refused.body.code, "RT_ERR_RATE_LIMITED");
      assert.ok(refused.headers["retry-after"]);
      assert.equal((await get(limited, "r", bob.token)).status, 200, "other users are unaffected");
    } finally {
      await limited.stop();
    }
  });
});
