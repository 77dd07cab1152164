/**
 * History when a room opens, across two pods on one Redis (started here): a page read on one
 * pod hands off to a stream on the other with no gap and no duplicate; paging back crosses
 * pods; a Redis restarted empty answers old cursors with an explicit reset, never silence; and
 * `HISTORY_TTL_SECONDS` reaches Redis.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ofType,
  openStream,
  postJson,
  request,
  type Stream,
  tokens,
  until,
} from "@realtime/testkit/http";
import { POD_SECRET, type Pod, startPod, stopPods, withPods } from "@realtime/testkit/pods";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";

interface Page {
  channel: string;
  events: { id: string; event: { type: string; content?: string } }[];
  cursor: string;
  previous: string | null;
  reset?: string;
}

const auth = tokens(Date.now, POD_SECRET);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function history(pod: Pod, token: string, room: string, query = ""): Promise<Page> {
  const reply = await request(`${pod.url}/api/channels/${room}/messages${query}`, {
    headers: bearer(token),
  });
  assert.equal(reply.status, 200, reply.text);
  return reply.json as unknown as Page;
}

async function say(pod: Pod, token: string, room: string, ...lines: string[]): Promise<void> {
  for (const content of lines) {
    const posted = await postJson(`${pod.url}/api/chat/messages`, token, {
      channel: room,
      content,
    });
    assert.equal(posted.status, 204, posted.text);
  }
}

const chatContents = (stream: Stream) =>
  stream.events
    .filter(ofType("chat"))
    .map((e) => (JSON.parse(e.data) as { content: string }).content);

const contents = (page: Page) => page.events.map((e) => e.event.content);

describe("history on two pods", { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let pods: Pod[];
  const streams: Stream[] = [];
  before(async () => {
    redis = await startRedis();
    pods = await withPods(2, { REDIS_URL: redis.url, RATE_LIMIT_CHAT_MAX: "0" });
  });
  after(async () => {
    for (const stream of streams) stream.close();
    await stopPods(pods ?? []);
    await redis?.stop();
  });

  const open = async (pod: Pod, token: string, room: string, cursor: string) => {
    const stream = await openStream(
      `${pod.url}/api/events?channel=channel:${room}&lastEventId=${cursor}`,
      bearer(token),
    );
    streams.push(stream);
    assert.equal(stream.status, 200, stream.text());
    return stream;
  };

  it("a page read on one pod hands off to a stream on the other: no gap, no duplicate", async () => {
    const [a, b] = pods as [Pod, Pod];
    const ada = await auth.issueUserToken({ id: "u_ada", name: "Ada" });
    await say(a, ada, "handoff", "h0", "h1", "h2", "h3", "h4", "h5");
    const page = await history(b, ada, "handoff", "?limit=4");
    assert.deepEqual(contents(page), ["h2", "h3", "h4", "h5"]);
    // Said on either pod between the read and the stream.
    await say(a, ada, "handoff", "g0");
    await say(b, ada, "handoff", "g1");
    const stream = await open(a, ada, "handoff", page.cursor);
    await stream.waitFor((e) => ofType("chat")(e) && e.data.includes('"g1"'));
    await say(b, ada, "handoff", "live");
    await stream.waitFor((e) => ofType("chat")(e) && e.data.includes('"live"'));
    assert.deepEqual(chatContents(stream), ["g0", "g1", "live"]);
    assert.equal(stream.events.filter((e) => e.event === "reset").length, 0);
    // Paging back on the other pod continues the first page exactly.
    const older = await history(a, ada, "handoff", `?limit=4&before=${page.previous}`);
    assert.deepEqual(contents(older), ["h0", "h1"]);
    assert.equal(older.previous, null);
  });

  it("with a publisher running throughout, every reader of the last 50 then the stream has each event exactly once", async () => {
    const [a, b] = pods as [Pod, Pod];
    const publisher = await auth.issueServiceToken({ service: "feed", scopes: ["publish"] });
    const accepted: number[] = [];
    let stop = false;
    const publishing = (async () => {
      for (let n = 1; !stop && n <= 2_000; n++) {
        const pod = n % 2 === 0 ? a : b;
        const reply = await postJson(`${pod.url}/api/publish`, publisher, {
          channel: "channel:busy",
          event: { type: "seq", n },
        });
        assert.equal(reply.status, 202, reply.text);
        accepted.push(n);
      }
    })();
    const seqOf = (e: { event: { type: string; n?: number } }) => e.event.n as number;
    const readers = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        // Readers arrive while the publisher runs, each at its own point.
        await until(
          () => accepted.length >= 60 + i * 40,
          `publisher passed ${60 + i * 40}`,
          20_000,
          5,
        );
        const token = await auth.issueUserToken({ id: `u_reader${i}`, name: `R${i}` });
        const [readOn, streamOn] = i % 2 === 0 ? [a, b] : [b, a];
        const reply = await request(`${readOn.url}/api/channels/busy/messages?limit=50`, {
          headers: bearer(token),
        });
        assert.equal(reply.status, 200, reply.text);
        const page = reply.json as unknown as Page & {
          events: { event: { type: string; n?: number } }[];
        };
        const stream = await open(streamOn, token, "busy", page.cursor);
        return { page: page.events.filter((e) => e.event.type === "seq").map(seqOf), stream };
      }),
    );
    await until(() => accepted.length >= 260, "publisher passed 260", 30_000, 5);
    stop = true;
    await publishing;
    const last = accepted.at(-1) as number;
    for (const [i, { page, stream }] of readers.entries()) {
      await stream.waitFor((e) => ofType("seq")(e) && JSON.parse(e.data).n === last, 20_000);
      const streamed = stream.events
        .filter(ofType("seq"))
        .map((e) => JSON.parse(e.data).n as number);
      const seen = [...page, ...streamed];
      const first = page[0] as number;
      // The page is the last 50 events: the earlier readers' `presence` events take a few.
      assert.ok(page.length >= 50 - readers.length, `reader ${i}: a full page (${page.length})`);
      assert.deepEqual(
        seen,
        Array.from({ length: last - first + 1 }, (_, k) => first + k),
        `reader ${i}: every event from the page's first to the last, once, in order`,
      );
      assert.equal(stream.events.filter((e) => e.event === "reset").length, 0);
    }
  });

  it("after Redis restarts empty, old cursors get an explicit reset, and history starts again", async () => {
    const [a, b] = pods as [Pod, Pod];
    const bob = await auth.issueUserToken({ id: "u_bob", name: "Bob" });
    await say(a, bob, "lost", "l0", "l1", "l2");
    const page = await history(b, bob, "lost", "?limit=2");
    assert.deepEqual(contents(page), ["l1", "l2"]);

    await redis.restart();
    await until(
      async () => (await a.readyz()) === 200 && (await b.readyz()) === 200,
      "both pods ready again",
      20_000,
    );
    // Paging back into a history that is gone says so.
    const gone = await history(a, bob, "lost", `?before=${page.previous}`);
    assert.equal(gone.reset, "epoch_changed");
    assert.deepEqual(gone.events, []);
    assert.equal(gone.previous, null);
    // A stream opened from the old cursor is told its channel was reset, then goes live.
    const stream = await open(b, bob, "lost", page.cursor);
    const reset = await stream.waitFor((e) => e.event === "reset");
    assert.equal(JSON.parse(reset.data).reason, "epoch_changed");
    await say(a, bob, "lost", "after");
    await stream.waitFor((e) => ofType("chat")(e) && e.data.includes('"after"'));
    assert.deepEqual(chatContents(stream), ["after"]);
    // History holds what was said since, under the ids the stream carried in the new epoch.
    const fresh = await history(b, bob, "lost");
    const chats = fresh.events.filter((e) => e.event.type === "chat");
    assert.deepEqual(
      chats.map((e) => e.event.content),
      ["after"],
    );
    assert.equal(chats[0]?.id, stream.events.find(ofType("chat"))?.id);
  });
});

describe("HISTORY_TTL_SECONDS in Redis", { timeout: 60_000 }, () => {
  let redis: TestRedis;
  let pod: Pod | undefined;
  before(async () => {
    redis = await startRedis();
    pod = await startPod({ REDIS_URL: redis.url, HISTORY_TTL_SECONDS: "1" });
  });
  after(async () => {
    await stopPods([pod]);
    await redis?.stop();
  });

  it("a channel's history is gone once nothing was said for HISTORY_TTL_SECONDS", async () => {
    const live = pod as Pod;
    const cy = await auth.issueUserToken({ id: "u_cy", name: "Cy" });
    await say(live, cy, "brief", "soon gone");
    // The default keeps it 300 s: only the setting can empty it within the wait.
    await until(
      async () => (await history(live, cy, "brief")).events.length === 0,
      "history expired",
      10_000,
      100,
    );
    assert.deepEqual((await history(live, cy, "brief")).events, []);
  });
});
