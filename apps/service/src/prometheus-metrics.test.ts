import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Metrics } from "@realtime/server";
import {
  MAX_REASONS,
  METRIC_ALIASES,
  OTHER_REASON,
  PrometheusMetrics,
  SEED_METRICS,
  UNMATCHED_ROUTE,
} from "./prometheus-metrics.ts";

/** The value of the sample line `series` (name plus labels, exactly as rendered). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** The sample lines of metric `name` with the name cut off (labels and value), in order. */
function samplesOf(text: string, name: string): string[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
    .map((line) => line.slice(name.length));
}

/** `# TYPE` of every metric family in `text`. */
function types(text: string): Map<string, string> {
  return new Map(
    [...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map(([, name, type]) => [
      name as string,
      type as string,
    ]),
  );
}

/**
 * prom-client's own gauges that end in `_total` (named before its conforming twins, which it
 * exports too: `realtime_nodejs_active_handles` beside `realtime_nodejs_active_handles_total`).
 */
const PROM_CLIENT_LEGACY = new Set([
  "realtime_nodejs_active_resources_total",
  "realtime_nodejs_active_handles_total",
  "realtime_nodejs_active_requests_total",
]);

/** An instance with every optional gauge, each reading a distinct number. */
function everything(): PrometheusMetrics {
  let n = 0;
  const read = () => {
    const value = ++n;
    return () => value;
  };
  return new PrometheusMetrics({
    gauges: {
      connections: read(),
      channels: read(),
      presenceUsers: read(),
      queuedBytes: read(),
      stalledStreams: read(),
      replaysRunning: read(),
      replaysWaiting: read(),
      brokerChannels: read(),
      historyBytes: read(),
      ready: read(),
      brokerReady: read(),
      draining: read(),
    },
  });
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
    core.streamReset?.("trimmed");
    core.streamReset?.("trimmed");
    core.streamReset?.("unknown_cursor");

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
    assert.equal(sample(text, 'realtime_stream_resets_total{reason="trimmed"}'), 2);
    assert.equal(sample(text, 'realtime_stream_resets_total{reason="unknown_cursor"}'), 1);
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

  test("every series follows the naming rule: realtime_ prefix, counters _total, gauges not", async () => {
    const metrics = everything();
    metrics.httpRequest("/healthz", "GET", 200, 0.001);
    const found = types(await metrics.render());
    assert.ok(found.size > 40, `${found.size} families`);
    for (const seed of SEED_METRICS) assert.ok(found.has(seed), `the seed's ${seed} stays`);
    for (const [name, type] of found) {
      if ((SEED_METRICS as readonly string[]).includes(name)) continue;
      if (name in METRIC_ALIASES || PROM_CLIENT_LEGACY.has(name)) continue;
      assert.match(name, /^realtime_[a-z0-9_]+$/, name);
      if (type === "counter") assert.match(name, /_total$/, `counter ${name}`);
      else assert.doesNotMatch(name, /_total$/, `${type} ${name}`);
    }
    // Every alias is exported beside a conforming name of the same type.
    for (const [alias, name] of Object.entries(METRIC_ALIASES)) {
      assert.equal(found.get(alias), found.get(name), `${alias} → ${name}`);
      assert.ok(found.has(name), name);
      assert.match(name, /^realtime_/);
      assert.equal(found.get(name) === "counter", name.endsWith("_total"), name);
    }
    for (const legacy of PROM_CLIENT_LEGACY) {
      assert.equal(found.get(legacy.replace(/_total$/, "")), "gauge", `${legacy}'s twin`);
    }
  });

  test("an alias reads exactly what its conforming name reads", async () => {
    const metrics = everything();
    metrics.eventsSent(5);
    metrics.eventsSent(3);
    metrics.publishFailed();
    metrics.publishFailed();
    metrics.connectionRefused("RT_ERR_AT_CAPACITY");
    metrics.connectionRefused("RT_ERR_UNAUTHORIZED");
    metrics.connectionRefused("RT_ERR_UNAUTHORIZED");
    metrics.connectionClosed("slow");
    metrics.connectionClosed("client");
    metrics.rateLimited("publish");
    metrics.rateLimited("channel");
    metrics.rateLimited("channel");
    const text = await metrics.render();
    for (const [alias, name] of Object.entries(METRIC_ALIASES)) {
      const values = samplesOf(text, name);
      assert.ok(values.length > 0, `${name} has samples`);
      assert.ok(
        values.every((v) => !v.endsWith(" 0")),
        `${name} was exercised: ${values.join(", ")}`,
      );
      assert.deepEqual(samplesOf(text, alias), values, `${alias} = ${name}`);
    }
    assert.equal(sample(text, "realtime_events_sent_total"), 8);
    assert.equal(sample(text, 'realtime_streams_refused_total{reason="RT_ERR_UNAUTHORIZED"}'), 2);
    assert.equal(sample(text, 'realtime_http_requests_rate_limited_total{limit="channel"}'), 2);
  });

  test("stream open time is a histogram in seconds", async () => {
    const metrics = everything();
    const core: Metrics = metrics;
    core.streamOpened?.(0.004);
    core.streamOpened?.(0.3);
    core.streamOpened?.(Number.POSITIVE_INFINITY);
    const text = await metrics.render();
    assert.equal(sample(text, "realtime_stream_open_seconds_count"), 2);
    assert.equal(sample(text, 'realtime_stream_open_seconds_bucket{le="0.005"}'), 1);
    assert.equal(sample(text, 'realtime_stream_open_seconds_bucket{le="0.25"}'), 1);
    assert.equal(sample(text, 'realtime_stream_open_seconds_bucket{le="0.5"}'), 2);
  });

  test("HTTP request duration by route template, method and status", async () => {
    const metrics = everything();
    metrics.httpRequest("/api/publish", "POST", 204, 0.002);
    metrics.httpRequest("/api/publish", "POST", 204, 0.02);
    metrics.httpRequest("/api/publish", "POST", 429, 0.001);
    metrics.httpRequest(UNMATCHED_ROUTE, "GET", 404, 0.001);
    metrics.httpRequest("/healthz", "GET", 200, Number.NaN);
    const text = await metrics.render();
    const series = (labels: string) => `realtime_http_request_duration_seconds_count{${labels}}`;
    assert.equal(sample(text, series('route="/api/publish",method="POST",status_code="204"')), 2);
    assert.equal(sample(text, series('route="/api/publish",method="POST",status_code="429"')), 1);
    assert.equal(sample(text, series('route="unmatched",method="GET",status_code="404"')), 1);
    assert.equal(samplesOf(text, "realtime_http_request_duration_seconds_count").length, 3);
    assert.equal(
      sample(
        text,
        'realtime_http_request_duration_seconds_bucket{le="0.01",route="/api/publish",method="POST",status_code="204"}',
      ),
      1,
    );
  });
});
