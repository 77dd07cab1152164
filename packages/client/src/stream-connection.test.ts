/**
 * Reconnection, driven deterministically: a fake EventSource plays the server, manual timers
 * stand in for the clock, and the jitter is a fixed number.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chat, settle, setup } from "./testing/client-fixture.ts";

describe("reconnection", () => {
  it("backs off 1 s doubling to 30 s with full jitter while the server stays away", async () => {
    const { client, sources, timers, changes } = setup();
    client.subscribe("channel:a");
    await settle();
    for (let i = 0; i < 8; i++) {
      sources.last.drop();
      timers.fireNext();
    }
    assert.deepEqual(timers.requested, [500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    assert.equal(sources.all.length, 9, "one new EventSource per retry");
    assert.equal(sources.all.slice(0, -1).filter((s) => !s.closed).length, 0);
    assert.deepEqual(
      changes.slice(1, 3).map((c) => [c.from, c.to, c.reason, c.delayMs]),
      [
        ["connecting", "reconnecting", "transport_error", 500],
        ["reconnecting", "reconnecting", "transport_error", 1000],
      ],
    );
  });

  it("starts the backoff over after a successful open", async () => {
    const { client, sources, timers } = setup();
    client.subscribe("channel:a");
    await settle();
    for (let i = 0; i < 3; i++) {
      sources.last.drop();
      timers.fireNext();
    }
    sources.last.open();
    sources.last.drop();
    assert.deepEqual(timers.requested, [500, 1000, 2000, 500]);
  });

  it("resumes with the id of the last event it saw", async () => {
    const { client, sources, timers } = setup({ lastEventId: "1.stored" });
    client.subscribe("channel:a");
    await settle();
    assert.equal(sources.last.cursor, "1.stored", "the first stream starts from the option");
    sources.last.open();
    sources.last.message(chat("channel:a", "one"), "1.first");
    sources.last.message(chat("channel:a", "two"), "1.second");
    sources.last.drop();
    timers.fireNext();
    assert.equal(sources.last.cursor, "1.second");
  });

  it("resumes from an id-only block when the EventSource exposes lastEventId", async () => {
    const { client, sources, timers } = setup({}, { exposeLastEventId: true });
    client.subscribe("channel:a");
    await settle();
    sources.last.open();
    sources.last.idOnly("1.start");
    assert.equal(client.lastEventId, "1.start");
    sources.last.idOnly("1.next");
    sources.last.drop();
    timers.fireNext();
    assert.equal(sources.last.cursor, "1.next");
    // Also when the block arrives just before the client itself replaces the stream.
    sources.last.open();
    sources.last.idOnly("1.later");
    client.subscribe("channel:b");
    await settle();
    assert.equal(sources.last.cursor, "1.later");
  });

  it("resumes from the starting cursor of the ready event when nothing else arrived", async () => {
    const { client, sources, timers } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.open();
    sources.last.ready("1.start", ["channel:a"]);
    assert.equal(client.lastEventId, "1.start");
    sources.last.drop();
    timers.fireNext();
    assert.equal(sources.last.cursor, "1.start");
  });

  it("resumes from an id-only block revealed by the close event (browsers)", async () => {
    const { client, sources, timers } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.open();
    sources.last.idOnly("1.start");
    sources.last.serverClose(3001, "shutdown");
    timers.fireNext();
    assert.equal(sources.last.cursor, "1.start");
  });

  it("picks up a channel change made while waiting to retry, without cutting the wait short", async () => {
    const { client, sources, timers } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.drop();
    client.subscribe("channel:b");
    await settle();
    assert.equal(sources.all.length, 1, "no attempt before the backoff ends");
    timers.fireNext();
    assert.deepEqual(sources.last.channels, ["channel:a", "channel:b"]);
  });
});

describe("close codes and refusals", () => {
  it("reconnects after a transient close code", async () => {
    const { client, sources, timers, changes } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.open();
    sources.last.serverClose(3001, "shutdown");
    assert.ok(sources.last.closed, "the client closes the EventSource itself");
    assert.deepEqual(changes.at(-1), {
      from: "open",
      to: "reconnecting",
      reason: "server_close",
      closeCode: 3001,
      message: "shutdown",
      delayMs: 500,
    });
    timers.fireNext();
    assert.equal(sources.all.length, 2);
  });

  for (const code of [3500, 3501, 3503, 3777]) {
    it(`does not retry after terminal close code ${code}`, async () => {
      const { client, sources, timers, changes } = setup();
      client.subscribe("channel:a");
      await settle();
      sources.last.open();
      sources.last.serverClose(code);
      await settle();
      assert.equal(client.state, "closed");
      assert.equal(changes.at(-1)?.closeCode, code);
      assert.deepEqual(timers.pending, []);
      assert.equal(sources.all.length, 1);
      assert.equal(sources.openCount, 0);
    });
  }

  it("tries a forbidden channel set again only once the set changes", async () => {
    const { client, sources } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.serverClose(3503, "forbidden");
    client.subscribe("channel:a"); // same set
    await settle();
    assert.equal(sources.all.length, 1);
    client.subscribe("channel:b");
    await settle();
    assert.equal(sources.all.length, 2);
    assert.equal(client.state, "connecting");
  });

  it("stays closed after 401 without a way to refresh, until connect()", async () => {
    const { client, sources, timers, changes } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.refuse(401);
    assert.equal(client.state, "closed");
    assert.equal(changes.at(-1)?.httpStatus, 401);
    client.subscribe("channel:b");
    await settle();
    assert.equal(sources.all.length, 1, "new channels do not fix credentials");
    assert.deepEqual(timers.pending, []);
    client.connect();
    assert.equal(sources.all.length, 2);
    assert.deepEqual(sources.last.channels, ["channel:a", "channel:b"]);
  });

  it("retries 503 with backoff", async () => {
    const { client, sources, timers } = setup();
    client.subscribe("channel:a");
    await settle();
    sources.last.refuse(503);
    timers.fireNext();
    sources.last.refuse(503);
    assert.deepEqual(timers.requested, [500, 1000]);
    assert.equal(client.state, "reconnecting");
  });

  it("asks with fetch why a browser EventSource was refused", async () => {
    const asked: string[] = [];
    const { client, sources, timers, changes } = setup({
      fetch: async (input) => {
        asked.push(input);
        return Response.json(
          { code: "RT_ERR_CHANNEL_FORBIDDEN", message: "user:u2 belongs to another user" },
          { status: 403 },
        );
      },
    });
    client.subscribe("user:u2");
    await settle();
    sources.last.refuse(); // no status, like a browser
    await settle();
    assert.deepEqual(asked, ["http://rt.test/api/events?channel=user%3Au2"]);
    assert.deepEqual(changes.at(-1), {
      from: "connecting",
      to: "closed",
      reason: "http_error",
      httpStatus: 403,
      errorCode: "RT_ERR_CHANNEL_FORBIDDEN",
      message: "user:u2 belongs to another user",
    });
    assert.deepEqual(timers.pending, []);
  });
});

describe("credentials", () => {
  it("refreshes the token on close code 3005 and reconnects at once with the new one", async () => {
    let token = "old";
    let refreshes = 0;
    const { client, sources, timers, transitions } = setup({
      getToken: () => token,
      onTokenExpired: async () => {
        refreshes++;
        token = "new";
      },
    });
    client.subscribe("user:u1");
    await settle();
    assert.equal(sources.last.init.token, "old");
    sources.last.open();
    sources.last.message(chat("user:u1", "x"), "1.seen");
    sources.last.serverClose(3005, "token_expired");
    await settle();
    assert.equal(refreshes, 1);
    assert.equal(sources.all.length, 2);
    assert.equal(sources.last.init.token, "new");
    assert.equal(sources.last.cursor, "1.seen");
    assert.deepEqual(timers.requested, [], "no backoff for a refresh");
    sources.last.open();
    assert.deepEqual(transitions().slice(-2), [
      "open→reconnecting:token_expired",
      "reconnecting→open:opened",
    ]);
  });

  it("refreshes once on 401, and stops if the fresh token is refused too", async () => {
    let refreshes = 0;
    const { client, sources, changes } = setup({
      getToken: async () => `t${refreshes}`,
      onTokenExpired: () => {
        refreshes++;
      },
    });
    client.subscribe("user:u1");
    await settle();
    sources.last.refuse(401);
    await settle();
    assert.equal(refreshes, 1);
    assert.equal(sources.last.init.token, "t1");
    sources.last.refuse(401);
    await settle();
    assert.equal(refreshes, 1);
    assert.equal(client.state, "closed");
    assert.equal(changes.at(-1)?.reason, "http_error");
    assert.equal(sources.all.length, 2);
  });

  it("closes when the refresh fails", async () => {
    const { client, sources, changes } = setup({
      onTokenExpired: () => Promise.reject(new Error("session gone")),
    });
    client.subscribe("user:u1");
    await settle();
    sources.last.open();
    sources.last.serverClose(3005);
    await settle();
    assert.equal(client.state, "closed");
    assert.deepEqual(changes.at(-1), {
      from: "reconnecting",
      to: "closed",
      reason: "token_refresh_failed",
      message: "session gone",
    });
    assert.equal(sources.all.length, 1);
  });
});

describe("online and offline", () => {
  it("pauses while offline and reconnects at once, with the cursor, when back", async () => {
    const { client, sources, timers, network, transitions } = setup();
    client.subscribe("channel:a");
    await settle();
    for (let i = 0; i < 3; i++) {
      sources.last.drop();
      timers.fireNext();
    }
    sources.last.open();
    sources.last.message(chat("channel:a", "x"), "1.seen");
    network.set(false);
    assert.equal(sources.last.closed, true, "the stream is dropped");
    assert.deepEqual(timers.pending, []);
    sources.last.drop(); // a late error from the dead connection changes nothing
    assert.equal(sources.all.length, 4);
    network.set(true);
    assert.equal(sources.all.length, 5);
    assert.equal(sources.last.cursor, "1.seen");
    assert.deepEqual(transitions().slice(-2), [
      "open→reconnecting:offline",
      "reconnecting→reconnecting:online",
    ]);
    sources.last.drop();
    assert.deepEqual(timers.pending, [500], "the backoff started over");
  });

  it("waits for the network before the first connection, and does not retry while offline", async () => {
    const { client, sources, timers, network, transitions } = setup();
    network.set(false);
    client.subscribe("channel:a");
    await settle();
    assert.equal(sources.all.length, 0);
    assert.deepEqual(transitions(), ["closed→reconnecting:offline"]);
    network.set(true);
    assert.equal(sources.all.length, 1);
    sources.last.open();
    // The browser may report the drop before the offline event.
    sources.last.drop();
    network.set(false);
    assert.deepEqual(timers.pending, []);
  });
});
