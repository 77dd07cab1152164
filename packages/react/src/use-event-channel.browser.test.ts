/**
 * The hooks in a real browser (the system Chromium, never a downloaded one) against the real
 * service: a page bundled with vite from `testing/two-feeds-page.ts` is served on the service's
 * own origin (Playwright answers its two files; everything else reaches the service), so the
 * page's EventSource carries the HttpOnly session cookie like any same-origin app.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { ChannelName } from "@realtime/protocol";
import { type RunningService, startService } from "@realtime/testkit/service";
import { type Browser, chromium } from "playwright-core";
import { build } from "vite";

const CHROMIUM = "/usr/bin/chromium";
const WAIT_MS = 10_000;
const PAGE_ENTRY = fileURLToPath(new URL("./testing/two-feeds-page.ts", import.meta.url));
const HISTORY_ENTRY = fileURLToPath(new URL("./testing/history-page.ts", import.meta.url));
const HTML =
  '<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="page.js"></script>';

/** Bundles a page (React in development mode, so StrictMode double-mounts effects). */
async function bundlePage(entry: string, outDir: string): Promise<string> {
  await build({
    configFile: false,
    logLevel: "silent",
    define: { "process.env.NODE_ENV": JSON.stringify("development") },
    build: {
      outDir,
      emptyOutDir: true,
      minify: false,
      lib: { entry, formats: ["es"], fileName: () => "page.js" },
    },
  });
  return readFile(join(outDir, "page.js"), "utf8");
}

/** Every `GET /api/events` that reaches the service, with the response to watch it end. */
function watchStreams(server: Server) {
  const streams: Array<{ url: string; closed: Promise<void> }> = [];
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    if (!request.url?.startsWith("/api/events")) return;
    streams.push({
      url: request.url,
      closed: new Promise((resolve) => response.once("close", () => resolve())),
    });
  });
  return streams;
}

function deadline<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe("React hooks in Chromium", { timeout: 120_000 }, () => {
  let browser: Browser;
  let svc: RunningService;
  let outDir: string;
  let script: string;
  let historyScript: string;

  before(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is missing at ${CHROMIUM}; this test never downloads a browser`);
    }
    outDir = await mkdtemp(join(tmpdir(), "realtime-react-"));
    script = await bundlePage(PAGE_ENTRY, join(outDir, "two-feeds"));
    historyScript = await bundlePage(HISTORY_ENTRY, join(outDir, "history"));
    svc = await startService();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    await browser?.close();
    await svc?.stop();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it("two channels in two components share one stream, get their events, and it closes on unmount", async () => {
    const streams = watchStreams(svc.service.app.server as unknown as Server);
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    const eventSourceRequests: string[] = [];
    page.on("request", (request) => {
      if (new URL(request.url()).pathname === "/api/events") {
        assert.equal(request.resourceType(), "eventsource");
        eventSourceRequests.push(request.url());
      }
    });
    await page.route(`${svc.url}/__test__/**`, (route) => {
      const isScript = route.request().url().endsWith("/page.js");
      return route.fulfill({
        contentType: isScript ? "text/javascript" : "text/html",
        body: isScript ? script : HTML,
      });
    });
    try {
      // Signs in through the service, which sets the HttpOnly cookie in this context.
      const login = await context.request.post(`${svc.url}/api/auth/dev-login`, {
        data: { name: "Ada" },
      });
      assert.equal(login.status(), 200);

      await page.goto(`${svc.url}/__test__/index.html`);
      await page.locator("#state", { hasText: /^open$/ }).waitFor({ timeout: WAIT_MS });

      for (const [channel, content] of [
        ["channel:a", "a1"],
        ["channel:b", "b1"],
        ["channel:a", "a2"],
        ["channel:b", "b2"],
      ] as const) {
        await svc.service.hub.publish(channel, { type: "chat", content });
      }
      const feed = (channel: string) => page.locator(`ul[data-channel="${channel}"] li`);
      await feed("channel:a").nth(1).waitFor({ timeout: WAIT_MS });
      await feed("channel:b").nth(1).waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await feed("channel:a").allTextContents(), ["a1", "a2"]);
      assert.deepEqual(await feed("channel:b").allTextContents(), ["b1", "b2"]);

      // Presence rides the same stream; the snapshot route is not built yet (404 tolerated).
      await svc.service.hub.publish("channel:a", {
        type: "presence",
        userId: "u_zed",
        userName: "Zed",
        status: "online",
      });
      await page
        .locator("#presence", { hasText: /^(partial|ready):.*Zed/ })
        .waitFor({ timeout: WAIT_MS });

      // StrictMode mounted, unmounted and re-mounted each Feed's effect: subscribe, unsubscribe,
      // subscribe. One subscription each is left (every event above arrived once) on one stream.
      const subscribed = await page.evaluate(
        () => (globalThis as unknown as { subscribed: string[] }).subscribed,
      );
      assert.deepEqual(
        subscribed.filter((channel) => channel === "channel:b"),
        ["channel:b", "channel:b"],
        "StrictMode ran the effect twice",
      );
      assert.equal(eventSourceRequests.length, 1, "one EventSource for both components");
      assert.equal(streams.length, 1, "one stream reached the server");
      const query = new URL(eventSourceRequests[0] ?? "").searchParams;
      assert.deepEqual(query.getAll("channel").sort(), ["channel:a", "channel:b"]);

      await page.locator("#toggle").click();
      await page.locator("#state", { hasText: /^closed$/ }).waitFor({ timeout: WAIT_MS });
      await deadline("the server to see the stream close", streams[0]?.closed ?? Promise.reject());
      assert.equal(svc.service.hub.connectionCount, 0);
      assert.equal(eventSourceRequests.length, 1, "unmounting opened nothing new");
      assert.deepEqual(
        problems.filter((p) => !p.includes("404")),
        [],
      );
    } finally {
      await context.close();
    }
  });

  it("hooks that start from history show the last events, then every live one once, with one read per channel under StrictMode", async () => {
    const publish = (channel: string, content: string) =>
      svc.service.hub.publish(channel as ChannelName, { type: "chat", content });
    for (let i = 0; i < 8; i++) await publish("channel:feed", `f${i}`);
    for (let i = 0; i < 8; i++) await publish("channel:log", `g${i}`);
    // Presence crowds the log's last page (limit 3) out: the hook reads further back.
    for (const userId of ["u_x", "u_y", "u_z"]) {
      await svc.service.hub.publish("channel:log" as ChannelName, {
        type: "presence",
        userId,
        userName: userId,
        status: "online",
      });
    }

    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    const eventSources: string[] = [];
    page.on("request", (request) => {
      if (new URL(request.url()).pathname === "/api/events") eventSources.push(request.url());
    });
    await page.route(`${svc.url}/__test__/**`, (route) => {
      const isScript = route.request().url().endsWith("/page.js");
      return route.fulfill({
        contentType: isScript ? "text/javascript" : "text/html",
        body: isScript ? historyScript : HTML,
      });
    });
    // The feed's first read: answered by the service, but handed to the page only after two
    // more events were published, so the stream has to bring exactly those two.
    const reads: string[] = [];
    await page.route(`${svc.url}/api/channels/**`, async (route) => {
      const url = new URL(route.request().url());
      reads.push(`${decodeURIComponent(url.pathname)}${url.search}`);
      const response = await route.fetch();
      if (url.pathname.includes("channel%3Afeed")) {
        await publish("channel:feed", "between0");
        await publish("channel:feed", "between1");
      }
      await route.fulfill({ response });
    });
    try {
      const login = await context.request.post(`${svc.url}/api/auth/dev-login`, {
        data: { name: "Ada" },
      });
      assert.equal(login.status(), 200);
      await page.goto(`${svc.url}/__test__/index.html`);
      await page.locator("#state", { hasText: /^open$/ }).waitFor({ timeout: WAIT_MS });

      const feed = page.locator("#feed li");
      await feed.nth(6).waitFor({ timeout: WAIT_MS });
      await publish("channel:feed", "live0");
      await feed.nth(7).waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await feed.allTextContents(), [
        "h:f3",
        "h:f4",
        "h:f5",
        "h:f6",
        "h:f7",
        "l:between0",
        "l:between1",
        "l:live0",
      ]);

      const log = page.locator("#log li");
      await page.locator("#log-state", { hasText: "older:true" }).waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await log.allTextContents(), ["g5", "g6", "g7"]);
      await page.locator("#older").click();
      await log.nth(5).waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await log.allTextContents(), ["g2", "g3", "g4", "g5", "g6", "g7"]);
      await publish("channel:log", "live");
      await log.nth(6).waitFor({ timeout: WAIT_MS });
      assert.deepEqual((await log.allTextContents()).slice(5), ["g7", "live"]);

      // StrictMode mounted every effect twice: the first mount was undone before it read.
      assert.deepEqual(
        reads.map((read) => read.replace(/before=[^&]+/, "before=…")).sort(),
        [
          "/api/channels/channel:feed/messages?limit=5",
          "/api/channels/channel:log/messages?limit=3",
          "/api/channels/channel:log/messages?limit=3&before=…",
          "/api/channels/channel:log/messages?limit=3&before=…",
        ].sort(),
      );
      assert.deepEqual(problems, []);
      // The stream waited for both first pages: one EventSource, with both channels.
      assert.equal(eventSources.length, 1);
      const query = new URL(eventSources[0] ?? "").searchParams;
      assert.deepEqual(query.getAll("channel").sort(), ["channel:feed", "channel:log"]);
    } finally {
      await context.close();
    }
  });
});
