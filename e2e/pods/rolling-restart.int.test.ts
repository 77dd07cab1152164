/**
 * The reference deployment under a rolling restart: `startStack` (`@realtime/testkit/stack`) starts redis-server,
 * three pods and nginx (TLS, HTTP/2 to clients, HTTP/1.1 keep-alive to the pods) with the
 * config in `deploy/nginx/`; 500 EventSource-like clients stream through nginx over HTTP/2
 * (25 TLS connections, 20 streams each, as browsers share one connection per origin) on 10
 * channels, 50 events/s are published through nginx, and `rollingRestart`
 * restarts every pod once in turn.
 *
 * Every client must get every event of its channels exactly once, in order, with no reset; no
 * client may see a refused stream (nginx sends it to another pod); each pod says it is unready
 * (503) while it drains and exits 0 by itself; every stream it drained reconnects. How fast — how soon /readyz turned 503, the drain durations, how the
 * closes spread, the peak reconnect rate — depends on the machine's load, so it is printed
 * (docs/operations.md quotes it), not asserted: that each stream closes at its own random
 * moment of the window is the hub's, tested without a clock in packages/server/src/hub.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createAuth } from "@realtime/service";
import { publishThroughProxy, serviceToken } from "@realtime/testkit/load";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { POD_SECRET } from "@realtime/testkit/pods";
import { connections } from "@realtime/testkit/scenarios";
import { formatReport, rollingRestart, type Stack, startStack } from "@realtime/testkit/stack";
import { checkChannel, H2Sessions, h2, perfect, StreamClient } from "@realtime/testkit/stream";

const PODS = 3;
const CLIENTS = 500;
const SESSIONS = 25;
const USERS = 25;
const CHANNELS = Array.from({ length: 10 }, (_, i) => `channel:roll-${i}`);
const RATE = 50;
const DRAIN_MS = 3_000;
/** Retry hints on the drained streams: 300 ms + up to 1 s of jitter. */
const RETRY_MS = 300;
const RETRY_JITTER_MS = 1_000;
const MIN_READY_MS = 2_500;

/** The most reconnect requests seen in any `windowMs` window. */
function peakRate(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  let from = 0;
  for (let to = 0; to < sorted.length; to++) {
    while ((sorted[to] as number) - (sorted[from] as number) >= windowMs) from++;
    peak = Math.max(peak, to - from + 1);
  }
  return peak;
}

describe("rolling restart through nginx (TLS, HTTP/2), 3 pods, Redis", { timeout: 150_000 }, () => {
  let stack: Stack | undefined;
  let release: (() => void) | undefined;
  let sessions: H2Sessions | undefined;
  let publisherSessions: H2Sessions | undefined;
  const clients: StreamClient[] = [];

  before(async () => {
    release = await acquireLoadLock();
    stack = await startStack({
      pods: PODS,
      runDir: mkdtempSync(join(tmpdir(), "realtime-stack-test-")),
      env: {
        NODE_ENV: "test",
        LOG_LEVEL: "warn",
        JWT_SECRET: POD_SECRET,
        SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
        RETRY_MS: String(RETRY_MS),
        RETRY_JITTER_MS: String(RETRY_JITTER_MS),
      },
    });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    sessions?.close();
    publisherSessions?.close();
    await stack?.stop();
    if (stack) rmSync(stack.runDir, { recursive: true, force: true });
    release?.();
  });

  it("500 clients, 50 events/s, every pod restarted once: 0 lost, 0 duplicated, in order", async (t) => {
    assert.ok(stack);
    const auth = createAuth({
      secret: POD_SECRET,
      issuer: "realtime",
      audience: "realtime",
      tokenTtlSeconds: 3600,
      cookieName: "rt_session",
    });
    const tokens = await Promise.all(
      Array.from({ length: USERS }, (_, u) =>
        auth.issueUserToken({ id: `u_roll${String(u).padStart(4, "0")}`, name: `Roller ${u}` }),
      ),
    );
    sessions = new H2Sessions(stack.url, SESSIONS);
    for (let i = 0; i < CLIENTS; i++) {
      // Two channels each: 100 subscribers per channel.
      const channels = [CHANNELS[i % 10] as string, CHANNELS[(i + 3) % 10] as string];
      clients.push(new StreamClient(tokens[i % USERS] as string, channels, h2(sessions, i)));
    }
    for (const client of clients) client.start(stack.url);
    await Promise.all(
      clients.map((c) =>
        c.until(
          () => c.channels.every((ch) => c.log.get(ch)?.start !== null),
          20_000,
          () => `not started: ${c.describe()}`,
        ),
      ),
    );
    const perPod = await Promise.all(stack.pods.map((pod) => connections(pod)));
    t.diagnostic(`streams per pod before: ${perPod.join(", ")}`);
    assert.equal(
      perPod.reduce((a, b) => a + b, 0),
      CLIENTS,
    );

    // Publish through nginx for the whole restart.
    publisherSessions = new H2Sessions(stack.url, 2);
    const stopPublishing = new AbortController();
    const publishing = publishThroughProxy({
      sessions: publisherSessions,
      token: await serviceToken(POD_SECRET),
      channels: CHANNELS,
      rate: RATE,
      signal: stopPublishing.signal,
    });
    // One second of steady state first.
    await clients[0]?.until(
      () => (clients[0]?.log.get(CHANNELS[0] as string)?.events.length ?? 0) >= 3,
      5_000,
      () => "no events before the restart",
    );

    const podStreams: number[] = [];
    const report = await rollingRestart(stack.pods, {
      minReadyMs: MIN_READY_MS,
      drainMs: DRAIN_MS,
      log: (line) => t.diagnostic(line),
      onStopping: (pod) => {
        void connections(pod).then((n) => podStreams.push(n));
      },
    });
    // A last second of steady state on the restarted pods, then stop and let everyone catch up.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    stopPublishing.abort();
    const published = await publishing;
    const top = new Map(
      [...published.accepted].map(([c, offsets]) => [c, Math.max(0, ...offsets.keys())]),
    );
    await Promise.all(
      clients.map((c) =>
        c.until(
          () => c.channels.every((ch) => c.lastOffset(ch) >= (top.get(ch) ?? 0)),
          20_000,
          () => `behind ${JSON.stringify([...top])}: ${c.describe()}`,
        ),
      ),
    );

    // --- every event exactly once, in order -------------------------------------------------
    let delivered = 0;
    let extra = 0;
    for (const [i, client] of clients.entries()) {
      assert.deepEqual(client.strays, [], `client ${i}: strays`);
      for (const channel of client.channels) {
        const log = client.log.get(channel);
        assert.ok(log);
        const check = checkChannel(log, "tick", published.accepted.get(channel) ?? new Map());
        delivered += check.received;
        extra += check.extra;
        // An event whose publish got no answer (ambiguous) may exist; it must still arrive
        // once, in order, like any other.
        assert.deepEqual(
          { ...check, extra: 0 },
          perfect(check),
          `client ${i} ${channel}: ${JSON.stringify(check)}`,
        );
        assert.ok(check.extra <= published.ambiguous, `client ${i} ${channel}: extra events`);
      }
    }
    const accepted = [...published.accepted.values()].reduce((s, m) => s + m.size, 0);

    // --- the proxy hid the restarts: no refused stream, every pod drained cleanly ----------
    const statuses = new Map<number, number>();
    for (const client of clients) {
      for (const s of client.statuses) statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
    const reconnects = clients.flatMap((c) => c.reconnects);
    const ends = clients.flatMap((c) => c.ends);
    const closes = clients.reduce(
      (n, c) => n + c.closes.filter((close) => close.code === 3001).length,
      0,
    );
    const peak1s = peakRate(reconnects, 1_000);
    const drains = report.pods.map((p, k) => {
      // Streams end only when a pod drains: every end between this pod's SIGTERM and the
      // next one's is this pod's, however late the client saw it.
      const next = report.pods[k + 1]?.signalledAt ?? Number.POSITIVE_INFINITY;
      const mine = ends.filter((at) => at >= p.signalledAt && at < next);
      const again = reconnects.filter((at) => at >= p.signalledAt && at < next);
      return {
        pod: p.pod,
        streams: mine.length,
        first: Math.min(...mine) - p.signalledAt,
        last: Math.max(...mine) - p.signalledAt,
        reconnects: again.length,
        peak: peakRate(again, 1_000),
        /** Reconnects per second if they came evenly over the drain window. */
        even: mine.length / (DRAIN_MS / 1000),
      };
    });

    const lines = [
      formatReport(report),
      `streams per pod when it was stopped: ${podStreams.join(", ")}; close events (3001) received: ${closes}`,
      ...drains.map(
        (d) =>
          `  ${d.pod}: ${d.streams} streams ended ${d.first.toFixed(0)}–${d.last.toFixed(0)} ms after SIGTERM; ` +
          `${d.reconnects} reconnects, peak ${d.peak} in 1 s (even over the drain: ${d.even.toFixed(0)}/s, ratio ${(d.peak / d.even).toFixed(2)})`,
      ),
      `reconnects: ${reconnects.length}; peak ${peak1s} in any 1 s, ${peakRate(reconnects, 100)} in any 100 ms`,
      `stream responses: ${JSON.stringify([...statuses])}`,
      `published: ${accepted} accepted of ${published.sent} at ${((accepted / published.elapsedMs) * 1000).toFixed(1)}/s; ` +
        `statuses ${JSON.stringify([...published.statuses])}, retried ${published.retried}, ambiguous ${published.ambiguous}`,
      `delivered: ${delivered} events, 0 lost, 0 duplicated, 0 out of order${extra ? ` (+${extra} of ambiguous publishes)` : ""}; ` +
        `TLS connections ${sessions.opened} (GOAWAY ${sessions.goaways})`,
    ];
    for (const line of lines.join("\n").split("\n")) t.diagnostic(line);

    assert.equal(delivered, accepted * 100, "every accepted event reached its 100 subscribers");
    assert.deepEqual([...statuses.keys()], [200], "no client ever saw a refused stream");
    for (const p of report.pods) {
      // Unready while still serving: the first /readyz that was not 200 was the pod's own 503,
      // not the silence of a pod already gone.
      assert.equal(p.unreadyStatus, 503, `${p.pod} said it was unready while it drained`);
      assert.equal(p.killed, false, `${p.pod} exited by itself`);
      assert.equal(p.exitCode, 0, `${p.pod} exit code`);
    }
    for (const d of drains) {
      assert.ok(d.streams >= 50, `${d.pod} had streams to drain (${JSON.stringify(d)})`);
      assert.equal(d.reconnects, d.streams, `${d.pod}: every drained stream reconnected`);
    }
  });
});
