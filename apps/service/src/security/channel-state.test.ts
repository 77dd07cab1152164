/**
 * Attack (issue 14, finding 1): one signed-in user makes an embedded pod keep state for rooms
 * nobody uses — opening and closing streams on fresh room names (each open publishes
 * `presence` into up to 16 rooms) and chatting into fresh rooms. The pod holds at most
 * `MAX_CHANNELS` channels and `HISTORY_MAX_BYTES` of history while it happens, releases what
 * nobody uses once the idle TTL passed (on its sweep timer: nothing reads those rooms again),
 * and refuses a stream on new rooms with 503 once every channel it holds has subscribers —
 * while a well-behaved pair of users on the same pod keep chatting, every message delivered
 * once, in order, without a reset.
 *
 * The stream-open rate limit is off here: this is what an attacker with many accounts gets
 * past it. (The limit itself is tested in rate-limit.test.ts.)
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { MemoryBroker } from "@realtime/server";
import { type Bystanders, startBystanders } from "@realtime/testkit/bystanders";
import { openStream, postJson, type Stream, until } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";

const MAX_CHANNELS = 400;
/** The `ready` control event (named, unlike application events). */
const isReady = (e: { event?: string | undefined }) => e.event === "ready";
const HISTORY_MAX_BYTES = 256 * 1024;
const IDLE_TTL_MS = 1_500;

describe("channel state one user can make an embedded pod keep", () => {
  let svc: RunningService;
  let bystanders: Bystanders;
  let attacker: { token: string };
  let rooms = 0;

  before(async () => {
    svc = await startService({
      MAX_CHANNELS: String(MAX_CHANNELS),
      HISTORY_MAX_BYTES: String(HISTORY_MAX_BYTES),
      CHANNEL_IDLE_TTL_MS: String(IDLE_TTL_MS),
      PRESENCE_GRACE_MS: "0",
      MAX_CONNECTIONS_PER_USER: "0",
      RATE_LIMIT_STREAMS_MAX: "0",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
      RATE_LIMIT_CHAT_MAX: "0",
      CHANNEL_PUBLISH_MAX: "0",
    });
    attacker = await svc.login("Mallory");
    bystanders = await startBystanders(svc);
  });
  after(async () => {
    bystanders.close();
    await svc.stop();
  });

  const stats = () => (svc.service.broker as MemoryBroker).bus.stats;

  /** Opens a stream on 16 fresh rooms, waits for it to be live, and returns it. */
  async function openFresh(): Promise<Stream> {
    const query = Array.from({ length: 16 }, () => `channel=channel:fresh${++rooms}`).join("&");
    return openStream(`${svc.url}/api/events?${query}`, {
      authorization: `Bearer ${attacker.token}`,
    });
  }

  it("opening and closing streams and chatting on fresh rooms: bounded while it lasts, released after", async () => {
    let most = 0;
    let mostBytes = 0;
    const sample = () => {
      most = Math.max(most, stats().channels);
      mostBytes = Math.max(mostBytes, stats().historyBytes);
    };
    for (let round = 0; round < 12; round++) {
      // Ten streams at a time (160 rooms), each closed once it is live.
      const streams = await Promise.all(Array.from({ length: 10 }, openFresh));
      await Promise.all(
        streams.map(async (s) => {
          assert.equal(s.status, 200, s.text());
          await s.waitFor(isReady);
          s.close();
        }),
      );
      // And chat into 40 fresh rooms, ~1 KB each.
      for (let i = 0; i < 40; i++) {
        const reply = await postJson(`${svc.url}/api/chat/messages`, attacker.token, {
          channel: `chatted${++rooms}`,
          content: "x".repeat(1_000),
        });
        assert.equal(reply.status, 204, reply.text);
      }
      sample();
      await bystanders.chat();
      sample();
    }
    assert.ok(rooms > 2 * MAX_CHANNELS, `the attack named ${rooms} rooms`);
    assert.ok(most <= MAX_CHANNELS, `held ${most} channels, cap ${MAX_CHANNELS}`);
    assert.ok(mostBytes <= HISTORY_MAX_BYTES, `held ${mostBytes} history bytes`);
    bystanders.assertHeardEverything();

    // The attacker stops. Nobody reads those rooms again: the sweep alone releases them.
    await until(() => stats().channels === 1, "only the lobby is left", 10_000);
    await bystanders.chat();
    bystanders.assertHeardEverything();
  });

  it("streams that keep every held channel subscribed: a stream on new rooms gets 503, nothing else does", async () => {
    const held: Stream[] = [];
    let refused: Stream | null = null;
    try {
      while (refused === null) {
        const s = await openFresh();
        if (s.status === 200) {
          held.push(s);
          await s.waitFor(isReady);
        } else {
          refused = s;
        }
        assert.ok(held.length <= MAX_CHANNELS / 16, "refused by the time the cap is reached");
      }
      await refused.ended;
      assert.equal(refused.status, 503, refused.text());
      const body = JSON.parse(refused.text()) as { code: string; message: string };
      assert.equal(body.code, "RT_ERR_AT_CAPACITY");
      assert.match(body.message, /channels/);
      assert.ok(Number(refused.headers["retry-after"]) >= 1);
      assert.ok(stats().channels <= MAX_CHANNELS);
      // The bystanders' room is one the pod already holds: they go on.
      await bystanders.chat();
      bystanders.assertHeardEverything();
    } finally {
      for (const s of held) s.close();
    }
    await until(() => stats().channels === 1, "released once the streams closed", 10_000);
    const again = await openFresh();
    assert.equal(again.status, 200, "new rooms are served again");
    again.close();
  });
});
