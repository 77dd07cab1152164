/**
 * The web app in the system Chromium, through the reference deployment
 * (`startStack` of `@realtime/testkit/stack`: nginx terminating TLS with HTTP/2, two pods,
 * redis-server), while `rollingRestart` restarts every pod once: the page stays signed in and
 * connected (the badge may say "reconnecting" for a moment), and every chat message posted
 * during the restart appears exactly once, in the order it was posted, with no "could not be
 * replayed" notice.
 *
 * The certificate is the stack's self-signed one: the browser context ignores certificate
 * errors (what `--ignore-certificate-errors` does), the Node posters use
 * `rejectUnauthorized: false`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import type http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createAuth } from "@realtime/service";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { POD_SECRET } from "@realtime/testkit/pods";
import { prepareWebApp } from "@realtime/testkit/service";
import { formatReport, rollingRestart, type Stack, startStack } from "@realtime/testkit/stack";
import { H2Sessions } from "@realtime/testkit/stream";
import type { Browser } from "playwright-core";
import {
  DESKTOP,
  launchBrowser,
  logLines,
  openUser,
  recordStatus,
  resetNotice,
  sendMessage,
  signIn,
  type User,
  waitForLine,
  waitForStatus,
} from "./browser.ts";

/** Chat messages per second, posted one after the other by three people. */
const RATE = 6;
const POSTERS = ["Carol", "Dan", "Eve"];

/** POSTs a chat message through nginx; resolves with the status. */
function postChat(session: http2.ClientHttp2Session, token: string, content: string) {
  return new Promise<number>((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": "/api/chat/messages",
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
    });
    let status = 0;
    stream.once("response", (headers) => {
      status = Number(headers[":status"] ?? 0);
    });
    stream.resume();
    stream.once("close", () => resolve(status));
    stream.once("error", () => resolve(status));
    stream.end(JSON.stringify({ channel: "general", content }));
  });
}

/** Chromium's own lines about a stream nginx ended (the drain): the reconnect, not a bug. */
function exceptStreamEnds(problems: readonly string[]): string[] {
  const stream = /^console error: .*net::ERR_[A-Z0-9_]+ \(https:\/\/[^/]+\/api\/events\?/;
  return problems.filter((line) => !stream.test(line));
}

describe("web app in Chromium through nginx (TLS, HTTP/2): rolling restart", {
  timeout: 120_000,
}, () => {
  let browser: Browser | undefined;
  let stack: Stack | undefined;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    // The pods read the built app when they start: build it first.
    [browser] = await Promise.all([launchBrowser(), prepareWebApp()]);
    stack = await startStack({
      pods: 2,
      runDir: mkdtempSync(join(tmpdir(), "realtime-stack-e2e-")),
      env: {
        NODE_ENV: "test",
        LOG_LEVEL: "warn",
        JWT_SECRET: POD_SECRET,
        SHUTDOWN_DRAIN_MS: "2000",
        RETRY_MS: "300",
        RETRY_JITTER_MS: "700",
      },
    });
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    if (stack) rmSync(stack.runDir, { recursive: true, force: true });
    release?.();
  });

  test("the page stays connected and misses nothing while every pod restarts", async (t) => {
    assert.ok(browser && stack);
    const sessions = new H2Sessions(stack.url, 1);
    let ada: User | undefined;
    try {
      ada = await openUser(browser, { ...DESKTOP, ignoreHTTPSErrors: true });
      await signIn(ada.page, stack.url, "Ada");
      await sendMessage(ada.page, "Hello through nginx");
      await waitForLine(ada.page, "Ada: Hello through nginx");
      const statusSeen = await recordStatus(ada.page);

      const auth = createAuth({
        secret: POD_SECRET,
        issuer: "realtime",
        audience: "realtime",
        tokenTtlSeconds: 3600,
        cookieName: "rt_session",
      });
      const tokens = await Promise.all(
        POSTERS.map((name, i) => auth.issueUserToken({ id: `u_poster${i}`, name })),
      );
      const posted: string[] = [];
      /** When each post that got its 204 was sent (`performance.now()`). */
      const acceptedAt: number[] = [];
      // Lines whose POST got no answer (502: nginx lost the pod as it closed): the message
      // may or may not have been published, and must not be sent twice.
      const ambiguous = new Set<string>();
      const refused: number[] = [];
      const stopPosting = new AbortController();
      // One after the other, so the order they were accepted in is the order posted.
      const posting = (async () => {
        const start = performance.now();
        for (let i = 0; !stopPosting.signal.aborted; i++) {
          const wait = start + (i * 1000) / RATE - performance.now();
          if (wait > 0) await delay(wait);
          const poster = i % POSTERS.length;
          const line = `${POSTERS[poster]}: message ${i}`;
          let status = 0;
          const sentAt = performance.now();
          // A 503 is a pod refusing before it did anything (closing): safe to send again.
          for (let attempt = 0; attempt < 3 && (attempt === 0 || status === 503); attempt++) {
            status = await postChat(sessions.get(0), tokens[poster] as string, `message ${i}`);
          }
          if (status === 204) {
            posted.push(line);
            acceptedAt.push(sentAt);
          } else if (status === 502 || status === 0) {
            posted.push(line);
            ambiguous.add(line);
          } else refused.push(status);
        }
      })();

      const report = await rollingRestart(stack.pods, {
        minReadyMs: 2_500,
        log: (line) => t.diagnostic(line),
      });
      stopPosting.abort();
      await posting;
      t.diagnostic(formatReport(report));

      assert.deepEqual(refused, [], "no post was refused");
      // Messages went in during every pod's restart (from its SIGTERM to the next one's): how
      // many depends on the machine's speed, that there were some does not.
      for (const [k, p] of report.pods.entries()) {
        const until = report.pods[k + 1]?.signalledAt ?? Number.POSITIVE_INFINITY;
        assert.ok(
          acceptedAt.some((at) => at >= p.signalledAt && at < until),
          `a message accepted during ${p.pod}'s restart`,
        );
      }
      // The last post that certainly went through: the page shows it once it caught up.
      const last = posted.findLast((line) => !ambiguous.has(line)) as string;
      await waitForLine(ada.page, last);
      await waitForStatus(ada.page, "connected");
      // Exactly what was posted, once each, in order (an unanswered post at most once, in its
      // place); nothing could not be replayed.
      const shown = await logLines(ada.page);
      assert.deepEqual(shown, [
        "Ada: Hello through nginx",
        ...posted.filter((line) => !ambiguous.has(line) || shown.includes(line)),
      ]);
      assert.equal(await resetNotice(ada.page).count(), 0);
      if (ambiguous.size > 0) {
        const log = readFileSync(stack.nginx.errorLog, "utf8").trim().split("\n");
        t.diagnostic(`nginx error log:\n${log.slice(-5).join("\n")}`);
      }
      const seen = await statusSeen();
      t.diagnostic(
        `badge: ${seen.join(" → ")}; ${posted.length} messages posted and shown` +
          (ambiguous.size ? ` (${ambiguous.size} unanswered: 502 as a pod closed)` : ""),
      );
      for (const text of seen) {
        assert.match(
          text,
          /^(connected|connecting…|reconnecting…|reconnecting in \d+ s)$/,
          "badge",
        );
      }
      assert.equal(seen.at(-1), "connected");
      // Still signed in, and input works through the restarted pods.
      await sendMessage(ada.page, "Still here");
      await waitForLine(ada.page, "Ada: Still here");
      assert.deepEqual(exceptStreamEnds(ada.problems), [], "no other console or page errors");
    } finally {
      sessions.close();
      await ada?.close();
    }
  });
});
