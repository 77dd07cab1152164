/**
 * The reference deployment's files stay in step with the service: the nginx configuration
 * renders, passes `nginx -t` and keeps the settings SSE needs; run in front of a pod it refuses
 * the internal endpoints (`/metrics`, `/readyz`) to clients and forwards the rest; the Grafana
 * dashboard queries only series a running service exports, with the labels it filters on. (The whole stack under a rolling restart
 * is `e2e/pods/rolling-restart.int.test.ts`.)
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { loadConfig } from "@realtime/service";
import { ofType, openStream, request } from "@realtime/testkit/http";
import { exercisedService, parseSamples, scrape } from "@realtime/testkit/metrics";
import { freePort } from "@realtime/testkit/redis";
import { startService } from "@realtime/testkit/service";
import {
  NGINX_TEMPLATE,
  renderTemplate,
  selfSignedCertificate,
  startNginx,
  stopNginx,
  upstreamServers,
  waitThroughProxy,
} from "@realtime/testkit/stack";

const run = promisify(execFile);
const DASHBOARD = new URL("../deploy/grafana/realtime-dashboard.json", import.meta.url);

/** Seconds of an nginx time like `60s`, `2m`, `1h`. */
function seconds(value: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(value);
  assert.ok(match, `an nginx time: ${value}`);
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] ?? "s"] ?? 1;
  return Number(match[1]) * scale;
}

/** One HTTPS request to the proxy, the path sent exactly as given (no URL normalisation). */
function viaProxy(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port,
      path,
      method: options.method ?? "GET",
      headers: options.headers,
      rejectUnauthorized: false,
      agent: false,
    });
    req.once("error", reject);
    req.once("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.once("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), text }),
      );
    });
    req.end(options.body);
  });
}

/** The body of the `location = <path>` block. */
function location(config: string, path: string): string {
  const start = config.indexOf(`location = ${path} {`);
  assert.ok(start >= 0, `location ${path}`);
  return config.slice(start, config.indexOf("}", start));
}

describe("deploy/", () => {
  it("nginx.conf renders, passes nginx -t, and keeps what SSE needs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "realtime-nginx-t-"));
    try {
      const prefix = join(dir, "nginx");
      for (const sub of ["logs", "temp"]) mkdirSync(join(prefix, sub), { recursive: true });
      const { cert, key } = await selfSignedCertificate(dir);
      const config = renderTemplate(readFileSync(NGINX_TEMPLATE, "utf8"), {
        PREFIX: prefix,
        LISTEN: "127.0.0.1:1",
        CERT: cert,
        KEY: key,
        UPSTREAM_SERVERS: upstreamServers([2, 3], 2),
      });
      assert.doesNotMatch(config, /@@/);
      const file = join(prefix, "nginx.conf");
      writeFileSync(file, config);
      const { stderr } = await run(
        "/usr/sbin/nginx",
        ["-t", "-q", "-p", `${prefix}/`, "-c", file, "-e", "stderr"],
        { timeout: 10_000 },
      );
      assert.equal(stderr.trim(), "", "nginx -t is silent");

      const heartbeatS = loadConfig({ NODE_ENV: "test" }).sse.heartbeatIntervalMs / 1000;
      const events = location(config, "/api/events");
      assert.match(events, /proxy_buffering off;/);
      for (const directive of ["proxy_read_timeout", "proxy_send_timeout", "send_timeout"]) {
        const value = new RegExp(`${directive} (\\S+);`).exec(events)?.[1] ?? "0";
        assert.ok(seconds(value) >= heartbeatS * 2, `${directive} ${value} ≫ heartbeat`);
      }
      assert.match(config, /listen 127\.0\.0\.1:1 ssl http2;/);
      assert.match(config, /proxy_http_version 1\.1;/);
      assert.match(config, /proxy_set_header Connection "";/);
      assert.match(config, /keepalive \d+;/);
      assert.match(config, /proxy_next_upstream error timeout http_502 http_503;/);
      assert.doesNotMatch(config, /non_idempotent/, "POSTs are never replayed");
      assert.match(config, /server 127\.0\.0\.1:2 max_fails=1 fail_timeout=2s;/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("nginx refuses /metrics and /readyz to clients, however spelled, and forwards the rest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "realtime-nginx-deny-"));
    // METRICS_PORT unset: the pod serves /metrics on its public port, the proxy is the defence.
    const svc = await startService();
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    try {
      const prefix = join(dir, "nginx");
      for (const sub of ["logs", "temp"]) mkdirSync(join(prefix, sub), { recursive: true });
      const { cert, key } = await selfSignedCertificate(dir);
      const port = await freePort();
      const file = join(prefix, "nginx.conf");
      writeFileSync(
        file,
        renderTemplate(readFileSync(NGINX_TEMPLATE, "utf8"), {
          PREFIX: prefix,
          LISTEN: `127.0.0.1:${port}`,
          CERT: cert,
          KEY: key,
          UPSTREAM_SERVERS: upstreamServers([svc.port], 2),
        }),
      );
      nginx = await startNginx(prefix, file);
      await waitThroughProxy(`https://127.0.0.1:${port}`, nginx);

      const internal = [
        "/metrics",
        "/metrics?name=sse_connections_total",
        "/metrics/",
        "//metrics",
        "/%6Detrics",
        "/METRICS",
        "/api/../metrics",
        "/./metrics",
        "/readyz",
      ];
      for (const path of internal) {
        const reply = await viaProxy(port, path);
        assert.equal(reply.status, 404, `${path}: ${reply.text}`);
        assert.match(reply.type, /^application\/json/, path);
        assert.deepEqual(JSON.parse(reply.text), {
          code: "RT_ERR_NOT_FOUND",
          message: "Not found",
        });
      }
      // The pod itself still serves them (to whoever reaches it without the proxy).
      assert.equal((await request(`${svc.url}/metrics`)).status, 200);

      // Everything else passes: health, a login, a chat post received on a stream.
      assert.equal((await viaProxy(port, "/healthz")).status, 200);
      const login = await viaProxy(port, "/api/auth/dev-login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Proxied" }),
      });
      assert.equal(login.status, 200, login.text);
      const { token } = JSON.parse(login.text) as { token: string };
      const stream = await openStream(`${svc.url}/api/events?channel=channel:proxied`, {
        authorization: `Bearer ${token}`,
      });
      try {
        assert.equal(stream.status, 200);
        const posted = await viaProxy(port, "/api/chat/messages", {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ channel: "proxied", content: "through nginx" }),
        });
        assert.equal(posted.status, 204, posted.text);
        await stream.waitFor(
          (e) => ofType("chat")(e) && JSON.parse(e.data).content === "through nginx",
        );
      } finally {
        stream.close();
      }
    } finally {
      if (nginx) await stopNginx(nginx.child);
      await svc.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the Grafana dashboard queries only series a running, exercised service exports", async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
      templating: { list: { query?: string | { query: string } }[] };
    };
    const exprs = [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...dashboard.templating.list.flatMap((v) =>
        typeof v.query === "object" ? [v.query.query] : [],
      ),
    ];
    assert.ok(exprs.length >= 25, "panels with queries");
    // Streams opened, closed and refused, an event delivered, requests answered and
    // rate-limited: labelled series and histograms have samples, not just a # TYPE line.
    const svc = await exercisedService();
    try {
      const samples = parseSamples(await scrape(svc));
      const labelsOf = new Map<string, Set<string>>();
      for (const sample of samples) {
        const names = labelsOf.get(sample.name) ?? new Set<string>();
        for (const [, label] of sample.labels.matchAll(/([a-z_]+)="/g)) names.add(label as string);
        labelsOf.set(sample.name, names);
      }
      // Every selector `name{label="…", …}` of every query: the series has samples, and the
      // labels it filters on (other than the scrape's job and instance) are its own.
      const selectors = exprs.flatMap((e) => [...e.matchAll(/([a-z_][a-z0-9_]*)\{([^}]*)\}/g)]);
      const used = new Set(selectors.map((m) => m[1] as string));
      for (const name of [
        "realtime_streams",
        "realtime_delivery_latency_seconds_bucket",
        "realtime_stream_open_seconds_bucket",
        "realtime_http_request_duration_seconds_bucket",
        "realtime_publish_errors_total",
        "realtime_streams_refused_total",
        "realtime_streams_closed_total",
        "realtime_broker_went_back_total",
        "realtime_stream_resets_total",
        "realtime_ready",
        "realtime_draining",
        "realtime_broker_ready",
      ]) {
        assert.ok(used.has(name), `the dashboard shows ${name}`);
      }
      for (const [, name, matchers] of selectors) {
        const labels = labelsOf.get(name as string);
        assert.ok(labels, `${name} has samples in /metrics`);
        for (const [, label] of (matchers as string).matchAll(/([a-z_]+)\s*[=!]~?\s*"/g)) {
          if (label === "job" || label === "instance") continue;
          assert.ok(labels.has(label as string), `${name} has the label ${label}`);
        }
      }
      for (const expr of exprs) {
        for (const [, by] of expr.matchAll(/by \(([^)]*)\)/g)) {
          for (const label of (by as string).split(",").map((l) => l.trim())) {
            if (["job", "instance", "le"].includes(label)) continue;
            const has = [...used].some((n) => expr.includes(n) && labelsOf.get(n)?.has(label));
            assert.ok(has, `by (${label}) in ${expr}: a label of the series`);
          }
        }
      }
    } finally {
      await svc.stop();
    }
  });
});
