/**
 * The histograms on a real service: `realtime_stream_open_seconds` once per opened stream, and
 * `realtime_http_request_duration_seconds` by route template with bounded labels, without the
 * SSE route.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { openStream, request, until } from "@realtime/testkit/http";
import { parseSamples, scrape } from "@realtime/testkit/metrics";
import { type RunningService, startService } from "@realtime/testkit/service";

const DURATION = "realtime_http_request_duration_seconds_count";

describe("/metrics histograms on a running service", () => {
  let svc: RunningService;
  before(async () => {
    svc = await startService();
  });
  after(async () => {
    await svc.stop();
  });

  test("stream open time: one observation per stream opened, none per refusal", async () => {
    const { token } = await svc.login("Opener");
    const auth = { authorization: `Bearer ${token}` };
    const streams = await Promise.all(
      ["a", "b"].map((room) => openStream(`${svc.url}/api/events?channel=channel:${room}`, auth)),
    );
    const refused = await openStream(`${svc.url}/api/events?channel=channel:a`);
    await refused.ended;
    assert.equal(refused.status, 401);
    try {
      for (const stream of streams) assert.equal(stream.status, 200);
      const samples = parseSamples(await scrape(svc));
      const value = (name: string, labels = "") =>
        samples.find((s) => s.name === name && s.labels === labels)?.value;
      assert.equal(value("realtime_stream_open_seconds_count"), 2);
      const sum = value("realtime_stream_open_seconds_sum") ?? Number.NaN;
      assert.ok(sum > 0 && sum < 10, `seconds: ${sum}`);
      assert.equal(value("realtime_stream_open_seconds_bucket", '{le="+Inf"}'), 2);
    } finally {
      for (const stream of streams) stream.close();
    }
  });

  test("request duration by route template: ids and unknown paths add no series, the stream route none", async () => {
    const { token } = await svc.login("Reader");
    const auth = { headers: { authorization: `Bearer ${token}` } };
    for (const room of ["one", "two", "three"]) {
      const reply = await request(`${svc.url}/api/channels/channel:${room}/messages`, auth);
      assert.equal(reply.status, 200);
    }
    for (const path of ["/wp-login.php", "/.env", "/admin/config.json"]) {
      await request(`${svc.url}${path}`);
    }
    const stream = await openStream(`${svc.url}/api/events?channel=channel:one`, auth.headers);
    assert.equal(stream.status, 200);
    stream.close();
    await until(
      async () => /^realtime_streams \S+$/m.exec(await scrape(svc))?.[0] === "realtime_streams 0",
      "the stream closed",
    );

    const durations = parseSamples(await scrape(svc)).filter((s) => s.name === DURATION);
    const history = durations.filter((s) =>
      s.labels.includes('route="/api/channels/:channel/messages"'),
    );
    assert.deepEqual(
      history.map((s) => [s.labels, s.value]),
      [['{route="/api/channels/:channel/messages",method="GET",status_code="200"}', 3]],
    );
    const unmatched = durations.filter((s) => s.labels.includes('route="unmatched"'));
    assert.equal(unmatched.length, 1, JSON.stringify(unmatched));
    assert.equal(unmatched[0]?.value, 3);
    assert.ok(
      durations.some((s) => s.labels.startsWith('{route="/api/auth/dev-login",method="POST"')),
    );
    for (const sample of durations) {
      assert.doesNotMatch(sample.labels, /\/api\/events|wp-login|channel:/, sample.labels);
    }
  });
});
