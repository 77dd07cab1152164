/**
 * `realtime_stream_resets_total{reason}`: every `reset` a stream is sent — a client that lost
 * continuity on a channel — is counted by its reason, provoked here through the real service
 * over real sockets and read off `/metrics`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { metricValue, ofType, openStream, postJson } from "@realtime/testkit/http";
import { scrape } from "@realtime/testkit/metrics";
import { type RunningService, startService } from "@realtime/testkit/service";

const RESETS = "realtime_stream_resets_total";

describe(RESETS, () => {
  let svc: RunningService;
  let auth: Record<string, string>;
  let token: string;
  before(async () => {
    // A history of 2 events per channel: a cursor 3 events back cannot be replayed.
    svc = await startService({ HISTORY_MAX_LENGTH: "2" });
    ({ token } = await svc.login("Ada"));
    auth = { authorization: `Bearer ${token}` };
  });
  after(() => svc.stop());

  it("counts a cursor the server cannot read as unknown_cursor, one per channel reset", async () => {
    const before = await scrape(svc);
    const url = `${svc.url}/api/events?channel=channel:r1&channel=channel:r2`;
    const stream = await openStream(url, { ...auth, "last-event-id": "not-a-cursor" });
    try {
      assert.equal(stream.status, 200);
      await stream.waitFor((e) => e.event === "ready");
      const resets = stream.events.filter((e) => e.event === "reset");
      assert.deepEqual(
        resets.map((e) => JSON.parse(e.data).reason),
        ["unknown_cursor", "unknown_cursor"],
      );
    } finally {
      stream.close();
    }
    const text = await scrape(svc);
    assert.match(text, new RegExp(`^# TYPE ${RESETS} counter$`, "m"));
    const labels = 'reason="unknown_cursor"';
    assert.equal(metricValue(text, RESETS, labels) - metricValue(before, RESETS, labels), 2);
  });

  it("counts a cursor older than the history holds as trimmed", async () => {
    const url = `${svc.url}/api/events?channel=channel:trim`;
    const first = await openStream(url, auth);
    let cursor: string;
    try {
      assert.equal(first.status, 200);
      await publish("trim", "one");
      cursor = (await first.waitFor(ofType("chat"))).id as string;
    } finally {
      first.close();
    }
    for (const content of ["two", "three", "four"]) await publish("trim", content);
    const before = await scrape(svc);
    const resumed = await openStream(url, { ...auth, "last-event-id": cursor });
    try {
      assert.equal(resumed.status, 200);
      const reset = await resumed.waitFor((e) => e.event === "reset");
      assert.equal(JSON.parse(reset.data).reason, "trimmed");
    } finally {
      resumed.close();
    }
    const text = await scrape(svc);
    const labels = 'reason="trimmed"';
    assert.equal(metricValue(text, RESETS, labels) - metricValue(before, RESETS, labels), 1);
    // Nothing else was counted by the resume.
    assert.equal(
      metricValue(text, RESETS, 'reason="unknown_cursor"'),
      metricValue(before, RESETS, 'reason="unknown_cursor"'),
    );
  });

  async function publish(room: string, content: string): Promise<void> {
    const posted = await postJson(`${svc.url}/api/chat/messages`, token, {
      channel: room,
      content,
    });
    assert.equal(posted.status, 204);
  }
});
