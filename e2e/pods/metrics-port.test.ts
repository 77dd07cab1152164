/**
 * Attack (issue 14, finding 7): anyone who reaches the public port reads `/metrics` (stream
 * counts, memory, refusals, rate limits). With `METRICS_PORT` the metrics move to a listener of
 * their own and the public port answers 404 for them, however the path is spelled, while users
 * on the same pod post and receive. Without it (development) they stay on the public port; in
 * production the pod says so at start. The reference proxy's own refusal is in e2e/deploy.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ofType, openStream, postJson, request, type Stream } from "@realtime/testkit/http";
import { type Pod, startPod } from "@realtime/testkit/pods";
import { freePort } from "@realtime/testkit/redis";
import { type RunningService, startService } from "@realtime/testkit/service";

/** Spellings of the path a router or proxy might normalise to `/metrics`. */
const SPELLINGS = [
  "/metrics",
  "/metrics?name=x",
  "/metrics/",
  "//metrics",
  "/%6Detrics",
  "/./metrics",
];

describe("METRICS_PORT", () => {
  let svc: RunningService;
  let good: { token: string };
  let goodStream: Stream;

  before(async () => {
    svc = await startService({ METRICS_PORT: "0" });
    good = await svc.login("Good");
    goodStream = await openStream(`${svc.url}/api/events?channel=channel:metrics`, {
      authorization: `Bearer ${good.token}`,
    });
    assert.equal(goodStream.status, 200);
  });
  after(async () => {
    goodStream.close();
    await svc.stop();
  });

  it("the public port answers 404 for /metrics and never shows them, however spelled; users are unaffected", async () => {
    const asGuest: Record<string, string> = {};
    for (const headers of [asGuest, { authorization: `Bearer ${good.token}` }]) {
      for (const path of ["/metrics", "/metrics?name=x", "/%6Detrics"]) {
        const reply = await request(`${svc.url}${path}`, { headers });
        assert.equal(reply.status, 404, `${path}: ${reply.text}`);
        assert.equal(reply.json?.code, "RT_ERR_NOT_FOUND", path);
      }
      // Other spellings are other paths to the router: the web app's page or a 404.
      for (const path of SPELLINGS) {
        const reply = await request(`${svc.url}${path}`, { headers });
        assert.doesNotMatch(reply.text, /sse_connections_total|# TYPE/, path);
      }
    }
    const head = await request(`${svc.url}/metrics`, { method: "HEAD" });
    assert.equal(head.status, 404);
    const posted = await postJson(`${svc.url}/api/chat/messages`, good.token, {
      channel: "metrics",
      content: "still here",
    });
    assert.equal(posted.status, 204, posted.text);
    await goodStream.waitFor(
      (e) => ofType("chat")(e) && JSON.parse(e.data).content === "still here",
    );
  });

  it("the metrics listener serves them, and nothing else", async () => {
    assert.ok(svc.metricsUrl);
    assert.notEqual(svc.metricsUrl, svc.url);
    const metrics = await request(`${svc.metricsUrl}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.headers["content-type"]), /^text\/plain/);
    // The stream opened on the public port is counted.
    assert.match(metrics.text, /^sse_connections_total 1$/m);
    for (const path of ["/api/auth/dev-login", "/api/events?channel=channel:x", "/", "/healthz"]) {
      const reply = await request(`${svc.metricsUrl}${path}`);
      assert.equal(reply.status, 404, path);
      assert.equal(reply.json?.code, "RT_ERR_NOT_FOUND", path);
    }
  });
});

describe("without METRICS_PORT", () => {
  it("development: /metrics stays on the public port", async () => {
    const svc = await startService();
    try {
      assert.equal(svc.metricsUrl, null);
      const reply = await request(`${svc.url}/metrics`);
      assert.equal(reply.status, 200);
      assert.match(reply.text, /^sse_connections_total /m);
    } finally {
      await svc.stop();
    }
  });
});

describe("main.ts with METRICS_PORT", () => {
  const pods: Pod[] = [];
  after(() => Promise.all(pods.map((pod) => pod.kill("SIGKILL"))));

  it("listens on both ports; the public one refuses /metrics", async () => {
    const metricsPort = await freePort();
    const pod = await startPod({ METRICS_PORT: String(metricsPort), METRICS_HOST: "127.0.0.1" });
    pods.push(pod);
    const refused = await request(`${pod.url}/metrics`);
    assert.equal(refused.status, 404);
    assert.equal(refused.json?.code, "RT_ERR_NOT_FOUND");
    const served = await request(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(served.status, 200);
    assert.match(served.text, /^realtime_process_resident_memory_bytes /m);
    await pod.kill("SIGTERM");
  });

  it("production without METRICS_PORT warns that /metrics is public", async () => {
    const pod = await startPod({ NODE_ENV: "production" });
    pods.push(pod);
    assert.equal((await request(`${pod.url}/metrics`)).status, 200);
    assert.match(pod.output(), /METRICS_PORT is not set: \/metrics is served on the public port/);
    await pod.kill("SIGTERM");
  });
});
