/**
 * The reference deployment's files stay in step with the service: the nginx configuration
 * renders, passes `nginx -t` and keeps the settings SSE needs; the Grafana dashboard queries
 * only series the service exports. (The whole stack under a rolling restart is
 * `rolling-restart.int.test.ts`.)
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import {
  NGINX_TEMPLATE,
  renderTemplate,
  selfSignedCertificate,
  upstreamServers,
} from "../../../scripts/stack.ts";
import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";

const run = promisify(execFile);
const DASHBOARD = new URL("../../../deploy/grafana/realtime-dashboard.json", import.meta.url);

/** Seconds of an nginx time like `60s`, `2m`, `1h`. */
function seconds(value: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(value);
  assert.ok(match, `an nginx time: ${value}`);
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] ?? "s"] ?? 1;
  return Number(match[1]) * scale;
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

  it("the Grafana dashboard queries only series the service exports", async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
      panels: { type: string; title: string; targets?: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(exprs.length >= 15, "panels with queries");
    const service = await buildApp(
      loadConfig({
        NODE_ENV: "test",
        LOG_LEVEL: "silent",
        JWT_SECRET: "deploy-test-secret-deploy-test-secret-01",
      }),
      { logger: false },
    );
    try {
      const text = (await service.app.inject({ url: "/metrics" })).body;
      const exported = new Set(
        [...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].flatMap(([, name, type]) =>
          type === "histogram"
            ? [`${name}_sum`, `${name}_count`, `${name}_bucket`]
            : [name as string],
        ),
      );
      const used = new Set(
        exprs.flatMap((e) => [...e.matchAll(/([a-z_][a-z0-9_]*)\{/g)].map((m) => m[1] as string)),
      );
      assert.ok(used.has("sse_connections_total"));
      for (const name of used) assert.ok(exported.has(name), `${name} is exported by /metrics`);
    } finally {
      await service.shutdown(0);
    }
  });
});
