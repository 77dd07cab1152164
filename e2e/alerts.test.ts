/**
 * The alert rules (deploy/prometheus/realtime-alerts.yml) with Prometheus's own `promtool`:
 * the file is valid; its unit tests (realtime-alerts.test.yml) show every alert firing in a bad
 * state and quiet in a good one, and fail when a rule is broken; and the rules, evaluated over
 * series scraped from a real service, stay quiet on healthy traffic and fire on real refusals
 * and real publish errors. promtool is Debian's `prometheus` package, which
 * `scripts/prepare-test-machine.ts` installs with the other system tools.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { MemoryBroker, type PublishResult } from "@realtime/server";
import { openStream, request } from "@realtime/testkit/http";
import { exercise, parseSamples, scrape } from "@realtime/testkit/metrics";
import { type RunningService, startService } from "@realtime/testkit/service";

const run = promisify(execFile);
const PROMTOOL = process.env.PROMTOOL_BIN || "/usr/bin/promtool";
const RULES = fileURLToPath(new URL("../deploy/prometheus/realtime-alerts.yml", import.meta.url));
const UNIT_TESTS = fileURLToPath(
  new URL("../deploy/prometheus/realtime-alerts.test.yml", import.meta.url),
);

/** Runs promtool; resolves with its exit code and output (it exits 1 on a failed test). */
async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(PROMTOOL, args, { timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== "number") throw error;
    return { code: failed.code, output: `${failed.stdout}${failed.stderr}` };
  }
}

/** The alert names of the rule file. */
function alertNames(rules: string): string[] {
  return [...rules.matchAll(/^\s*- alert: (\w+)$/gm)].map((m) => m[1] as string);
}

/**
 * Input series for promtool from two scrapes of one pod, `before` and `after` a minute's worth of
 * traffic: each counter (and histogram part) keeps growing at the rate seen between them, each
 * gauge stays at its last value, for `minutes`.
 */
function seriesFromScrapes(before: string, after: string, minutes: number) {
  const types = new Map(
    [...after.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
  const typeOf = (name: string) =>
    types.get(name) ?? types.get(name.replace(/_(bucket|sum|count)$/, ""));
  const start = new Map(parseSamples(before).map((s) => [`${s.name}${s.labels}`, s.value]));
  const pod = 'job="realtime",instance="pod-0"';
  const series = [{ series: `up{${pod}}`, values: `1x${minutes}` }];
  for (const sample of parseSamples(after)) {
    if (!Number.isFinite(sample.value)) continue;
    const labels = sample.labels ? `{${pod},${sample.labels.slice(1)}` : `{${pod}}`;
    const type = typeOf(sample.name);
    const from = start.get(`${sample.name}${sample.labels}`) ?? 0;
    const values =
      type === "counter" || type === "histogram"
        ? `${from}+${sample.value - from}x${minutes}`
        : `${sample.value}x${minutes}`;
    series.push({ series: `${sample.name}${labels}`, values });
  }
  return series;
}

/**
 * Asserts that the rules, after `minutes` of the traffic between two scrapes, fire exactly
 * `expected` (each once: one pod, one job) and no other alert.
 */
async function assertFiring(before: string, after: string, expected: string[]): Promise<void> {
  const minutes = 40;
  const dir = mkdtempSync(join(tmpdir(), "realtime-alerts-"));
  try {
    const file = join(dir, "scraped.test.yml");
    const test = {
      rule_files: [RULES],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: seriesFromScrapes(before, after, minutes),
          promql_expr_test: [
            {
              expr: 'count by (alertname) (ALERTS{alertstate="firing"})',
              eval_time: `${minutes - 1}m`,
              exp_samples: expected.map((name) => ({ labels: `{alertname="${name}"}`, value: 1 })),
            },
          ],
        },
      ],
    };
    // JSON is YAML: promtool reads it as it is.
    writeFileSync(file, JSON.stringify(test));
    const { code, output } = await promtool("test", "rules", file);
    assert.equal(code, 0, `expected firing: [${expected.join(", ")}]\n${output}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A broker whose publishes fail, as Redis's do when it is unreachable. */
class RefusingBroker extends MemoryBroker {
  override async publish(): Promise<PublishResult> {
    throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
  }
}

describe("deploy/prometheus/realtime-alerts.yml", () => {
  it("is a valid rule file, and its unit tests pass: each alert fires in its bad state, none in the good ones", async () => {
    const check = await promtool("check", "rules", RULES);
    assert.equal(check.code, 0, check.output);
    const rules = readFileSync(RULES, "utf8");
    const names = alertNames(rules);
    assert.match(check.output, new RegExp(`SUCCESS: ${names.length} rules found`));
    const tested = await promtool("test", "rules", UNIT_TESTS);
    assert.equal(tested.code, 0, tested.output);
    assert.match(tested.output, /SUCCESS/);
  });

  it("unit-tests every alert both ways, every rule has a runbook in operations.md", () => {
    const rules = readFileSync(RULES, "utf8");
    const names = alertNames(rules);
    assert.deepEqual(names, [
      "RealtimeDeliveryLatencyHigh",
      "RealtimeStreamsRefusedByServer",
      "RealtimeStreamsRefused",
      "RealtimePublishErrors",
      "RealtimeSlowClientDrops",
      "RealtimeBrokerWentBack",
      "RealtimeStreamResets",
      "RealtimeBrokerNotReady",
      "RealtimePodDown",
    ]);
    const cases = readFileSync(UNIT_TESTS, "utf8")
      .split(/^\s*- eval_time:/m)
      .slice(1)
      .map((chunk) => ({
        alert: /alertname: (\w+)/.exec(chunk)?.[1],
        quiet: /exp_alerts: \[\]/.test(chunk),
        fires: /exp_labels: \{ severity: \w+/.test(chunk),
      }));
    const operations = readFileSync(new URL("../docs/operations.md", import.meta.url), "utf8");
    for (const name of names) {
      assert.ok(
        cases.some((c) => c.alert === name && c.fires),
        `${name} fires in a test`,
      );
      assert.ok(
        cases.some((c) => c.alert === name && c.quiet),
        `${name} is quiet in a test`,
      );
      assert.match(operations, new RegExp(`^#### \`${name}\``, "m"), `${name} in operations.md`);
    }
    assert.equal(
      (rules.match(/runbook: "docs\/operations\.md#alerts"/g) ?? []).length,
      names.length,
    );
  });

  it("the unit tests fail when a rule is broken (a threshold a thousand times higher)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "realtime-alerts-broken-"));
    try {
      const broken = readFileSync(RULES, "utf8").replace(/> 0\.5$/m, "> 500");
      assert.notEqual(broken, readFileSync(RULES, "utf8"));
      writeFileSync(join(dir, "realtime-alerts.yml"), broken);
      writeFileSync(join(dir, "realtime-alerts.test.yml"), readFileSync(UNIT_TESTS));
      const tested = await promtool("test", "rules", join(dir, "realtime-alerts.test.yml"));
      assert.equal(tested.code, 1, tested.output);
      assert.match(tested.output, /RealtimeDeliveryLatencyHigh/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("over a real service's scrapes", () => {
    let svc: RunningService;
    before(async () => {
      svc = await startService({ RATE_LIMIT_HISTORY_MAX: "1" });
    });
    after(async () => {
      await svc.stop();
    });

    it("stays quiet on healthy traffic (streams, events, requests, a refusal, a 429)", async () => {
      const first = await scrape(svc);
      await exercise(svc);
      const second = await scrape(svc);
      // The traffic happened, so the rules saw rates, not zeros.
      const sent = (text: string) =>
        parseSamples(text).find((s) => s.name === "realtime_events_sent_total")?.value ?? 0;
      assert.ok(sent(second) > sent(first));
      // Every series the rules read is one this pod exports, with samples (`up` is Prometheus's).
      const exported = new Set(parseSamples(second).map((s) => s.name));
      const read = new Set(
        [...readFileSync(RULES, "utf8").matchAll(/\b([a-z_][a-z0-9_]*)(?:\{|\[)/g)].map(
          (m) => m[1] as string,
        ),
      );
      read.delete("up");
      assert.ok(read.size >= 6, [...read].join(", "));
      for (const name of read) assert.ok(exported.has(name), `${name} is exported by /metrics`);
      await assertFiring(first, second, []);
    });

    it("fires on delivery p99 when this pod's deliveries take most of a second", async () => {
      const first = await scrape(svc);
      // The delivery path's observations, as it makes them (not yet fed by a real delivery).
      for (let i = 0; i < 50; i++) svc.service.metrics.deliveryLatency(0.8);
      await assertFiring(first, await scrape(svc), ["RealtimeDeliveryLatencyHigh"]);
    });
  });

  it("fires on stream refusals when the pod is full", async () => {
    const svc = await startService({ MAX_CONNECTIONS: "1" });
    try {
      const { token } = await svc.login("Full");
      const url = `${svc.url}/api/events?channel=channel:full`;
      const auth = { authorization: `Bearer ${token}` };
      const first = await scrape(svc);
      const open = await openStream(url, auth);
      try {
        assert.equal(open.status, 200);
        for (let i = 0; i < 3; i++) {
          const refused = await openStream(url, auth);
          await refused.ended;
          assert.equal(refused.status, 503);
        }
        await assertFiring(first, await scrape(svc), [
          "RealtimeStreamsRefused",
          "RealtimeStreamsRefusedByServer",
        ]);
      } finally {
        open.close();
      }
    } finally {
      await svc.stop();
    }
  });

  it("fires on publish errors when the broker refuses publishes", async () => {
    const svc = await startService({}, { broker: new RefusingBroker() });
    try {
      const { token } = await svc.login("Unheard");
      const first = await scrape(svc);
      const posted = await svc.post("/api/chat/messages", token, { channel: "lost", content: "x" });
      assert.equal(posted.status, 503);
      assert.equal((await request(`${svc.url}/healthz`)).status, 200);
      await assertFiring(first, await scrape(svc), ["RealtimePublishErrors"]);
    } finally {
      await svc.stop();
    }
  });
});
