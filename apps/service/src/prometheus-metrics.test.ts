import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Metrics } from "@realtime/server";
import { MAX_REASONS, OTHER_REASON, PrometheusMetrics } from "./prometheus-metrics.ts";

/** The value of the sample line `series` (name plus labels, exactly as rendered). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe("PrometheusMetrics", () => {
  test("gauges are read at scrape time", async () => {
    let connections = 3;
    const metrics = new PrometheusMetrics({
      gauges: { connections: () => connections, channels: () => 2 },
      defaultMetrics: false,
    });
    let text = await metrics.render();
    assert.equal(sample(text, "sse_connections_total"), 3);
    assert.equal(sample(text, "sse_channels_total"), 2);
    assert.match(text, /# TYPE sse_connections_total gauge/);
    connections = 7;
    text = await metrics.render();
    assert.equal(sample(text, "sse_connections_total"), 7);
  });

  test("counters count what the core reports", async () => {
    const metrics = new PrometheusMetrics({
      gauges: { connections: () => 0, channels: () => 0 },
      defaultMetrics: false,
    });
    // Through the interface, as the core sees it.
    const core: Metrics = metrics;
    core.eventsSent(5);
    core.eventsSent(2);
    core.eventsSent(0);
    core.eventsSent(-1);
    core.eventsSent(Number.NaN);
    core.eventPublished();
    core.eventPublished();
    core.eventPublished();
    core.publishFailed();
    core.publishReplayed?.();
    core.connectionRefused("RT_ERR_AT_CAPACITY");
    core.connectionRefused("RT_ERR_AT_CAPACITY");
    core.connectionRefused("RT_ERR_UNAUTHORIZED");
    core.connectionClosed("client");
    core.connectionClosed("slow");
    core.connectionClosed("slow");

    const text = await metrics.render();
    assert.equal(sample(text, "sse_events_sent"), 7);
    assert.match(text, /# TYPE sse_events_sent counter/);
    assert.equal(sample(text, "realtime_events_published_total"), 3);
    assert.equal(sample(text, "redis_publish_errors"), 1);
    assert.equal(sample(text, "realtime_publish_replays_total"), 1);
    assert.equal(sample(text, 'sse_connections_refused_total{reason="RT_ERR_AT_CAPACITY"}'), 2);
    assert.equal(sample(text, 'sse_connections_refused_total{reason="RT_ERR_UNAUTHORIZED"}'), 1);
    assert.equal(sample(text, 'sse_disconnects_total{reason="client"}'), 1);
    assert.equal(sample(text, 'sse_disconnects_total{reason="slow"}'), 2);
  });

  test("presence: users online (read at scrape time) and events by status", async () => {
    let users = 4;
    const metrics = new PrometheusMetrics({
      gauges: { connections: () => 0, channels: () => 0, presenceUsers: () => users },
      defaultMetrics: false,
    });
    metrics.presenceEvent("online");
    metrics.presenceEvent("online");
    metrics.presenceEvent("offline");
    let text = await metrics.render();
    assert.equal(sample(text, "realtime_presence_users_online"), 4);
    assert.match(text, /# TYPE realtime_presence_users_online gauge/);
    assert.equal(sample(text, 'realtime_presence_events_total{status="online"}'), 2);
    assert.equal(sample(text, 'realtime_presence_events_total{status="offline"}'), 1);
    users = 1;
    text = await metrics.render();
    assert.equal(sample(text, "realtime_presence_users_online"), 1);
  });

  test("label values are bounded", async () => {
    const metrics = new PrometheusMetrics({
      gauges: { connections: () => 0, channels: () => 0 },
      defaultMetrics: false,
    });
    for (let i = 0; i < MAX_REASONS + 10; i++) metrics.connectionClosed(`r${i}`);
    metrics.connectionClosed('bad "label"\n');
    const text = await metrics.render();
    const series = text.split("\n").filter((l) => l.startsWith("sse_disconnects_total{"));
    assert.equal(series.length, MAX_REASONS + 1);
    assert.equal(sample(text, `sse_disconnects_total{reason="${OTHER_REASON}"}`), 11);
  });

  test("instances are independent and include prefixed process metrics", async () => {
    const gauges = { connections: () => 1, channels: () => 1 };
    const a = new PrometheusMetrics({ gauges });
    const b = new PrometheusMetrics({ gauges });
    a.eventPublished();
    const textA = await a.render();
    const textB = await b.render();
    assert.equal(sample(textA, "realtime_events_published_total"), 1);
    assert.equal(sample(textB, "realtime_events_published_total"), 0);
    assert.match(textB, /^realtime_process_cpu_user_seconds_total /m);
    assert.match(textB, /^realtime_nodejs_eventloop_lag_seconds /m);
    assert.match(a.contentType, /^text\/plain/);
  });

  test("delivery latency is a histogram in seconds; clock skew counts as zero, nonsense not at all", async () => {
    const metrics = new PrometheusMetrics({
      gauges: { connections: () => 0, channels: () => 0 },
      defaultMetrics: false,
    });
    metrics.deliveryLatency(0.003);
    metrics.deliveryLatency(0.2);
    metrics.deliveryLatency(-0.002);
    metrics.deliveryLatency(Number.NaN);
    const text = await metrics.render();
    assert.equal(sample(text, "realtime_delivery_latency_seconds_count"), 3);
    assert.equal(sample(text, 'realtime_delivery_latency_seconds_bucket{le="0.001"}'), 1);
    assert.equal(sample(text, 'realtime_delivery_latency_seconds_bucket{le="0.005"}'), 2);
    assert.equal(sample(text, 'realtime_delivery_latency_seconds_bucket{le="+Inf"}'), 3);
    assert.ok(
      Math.abs((sample(text, "realtime_delivery_latency_seconds_sum") ?? Number.NaN) - 0.203) <
        1e-9,
    );
  });
});
