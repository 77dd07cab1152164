/**
 * Browser side of the end-to-end tests: launches the system Chromium (never a downloaded one)
 * and drives the web app (apps/web) the way a person would. Every wait is a Playwright
 * auto-waiting locator or a poll with a deadline; nothing sleeps for a fixed time.
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import {
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  chromium,
  type Locator,
  type Page,
} from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

const LAUNCH_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** How long any single wait in a test may take before it fails. */
export const WAIT_MS = 10_000;

/** Launches /usr/bin/chromium; throws (so the tests fail, never skip) when it is missing. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM_PATH}: the e2e tests need the system Chromium ` +
        "(e.g. `apt-get install chromium`); they never download a browser.",
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: LAUNCH_ARGS });
}

/** A laptop-sized window: rooms, chat and the side panel side by side. */
export const DESKTOP: BrowserContextOptions = {
  viewport: { width: 1200, height: 760 },
  deviceScaleFactor: 1,
};

/** A phone: one section at a time. */
export const PHONE: BrowserContextOptions = {
  viewport: { width: 390, height: 780 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

/** One person with their own browser context (own cookies, own connections). */
export interface User {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Console errors and uncaught page errors seen so far, as readable lines. */
  readonly problems: string[];
  close(): Promise<void>;
}

export async function openUser(
  browser: Browser,
  options: BrowserContextOptions = DESKTOP,
): Promise<User> {
  const context = await browser.newContext({
    colorScheme: "light",
    locale: "en-US",
    reducedMotion: "reduce",
    ...options,
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error" && message.type() !== "warning") return;
    const where = message.location().url;
    problems.push(
      `console ${message.type()}: ${message.text()}${where ? ` (${where})` : ""}`.trim(),
    );
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.stack ?? error.message}`));
  return { context, page, problems, close: () => context.close() };
}

/** Opens the app, types `name`, clicks "Sign in" and waits for the stream to connect. */
export async function signIn(page: Page, baseUrl: string, name: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Sign in" }).click();
  await waitForSignedIn(page, name);
}

export async function waitForSignedIn(page: Page, name: string): Promise<void> {
  await page.getByText(`Signed in as ${name}`, { exact: true }).waitFor({ timeout: WAIT_MS });
  await waitForStatus(page, "connected");
}

/** Types a message in the composer and clicks "Send"; waits until the POST succeeded. */
export async function sendMessage(page: Page, content: string): Promise<void> {
  const input = page.getByLabel("Message", { exact: true });
  await input.fill(content);
  await page.getByRole("button", { name: "Send", exact: true }).click();
  // The composer clears only once the service accepted the message (204).
  await page.waitForFunction(
    () => (document.getElementById("composer-input") as HTMLTextAreaElement).value === "",
    undefined,
    { timeout: WAIT_MS },
  );
}

/** Opens a room through "Join room by name" (on a phone, behind the "+ Join" chip). */
export async function joinRoom(page: Page, name: string): Promise<void> {
  const input = page.getByLabel("Join room by name");
  if (!(await input.isVisible())) await page.getByRole("button", { name: "+ Join" }).click();
  await input.fill(name);
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await roomTitle(page, name.replace(/^(#|channel:)/, "")).waitFor({ timeout: WAIT_MS });
}

/** Switches to a joined room by its button in the room list. */
export async function openRoom(page: Page, room: string): Promise<void> {
  await page
    .getByRole("navigation", { name: "Rooms" })
    .getByRole("button", { name: new RegExp(`^${escapeRegExp(room)}(, \\d+\\+? unread)?$`) })
    .click();
  await roomTitle(page, room).waitFor({ timeout: WAIT_MS });
}

export function roomTitle(page: Page, room: string): Locator {
  return page.getByRole("heading", { level: 1, name: room, exact: true });
}

/** The badge text, exactly (`connected`, `reconnecting in 2 s`, `offline`, …). */
export async function waitForStatus(
  page: Page,
  text: string | RegExp,
  timeout = WAIT_MS,
): Promise<void> {
  const pattern = typeof text === "string" ? new RegExp(`^${escapeRegExp(text)}$`) : text;
  await page.locator(".badge-text", { hasText: pattern }).waitFor({ timeout });
}

/**
 * Records every text the connection badge shows from now on, so a state that lasts only a
 * few hundred milliseconds ("reconnecting in 1 s") can be asserted afterwards without racing it.
 */
export async function recordStatus(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const badge = document.querySelector(".badge") as HTMLElement;
    const text = () => badge.querySelector(".badge-text")?.textContent ?? "";
    const seen: string[] = [text()];
    (window as unknown as { __statusSeen: string[] }).__statusSeen = seen;
    new MutationObserver(() => {
      const now = text();
      if (seen.at(-1) !== now) seen.push(now);
    }).observe(badge, { childList: true, characterData: true, subtree: true });
  });
  return () =>
    page.evaluate(() => [...(window as unknown as { __statusSeen: string[] }).__statusSeen]);
}

/** The messages of the open room as `Author: text` lines, in order. */
export async function logLines(page: Page): Promise<string[]> {
  return page
    .locator(".msg")
    .evaluateAll((items) =>
      items.map(
        (item) =>
          `${(item as HTMLElement).dataset.author}: ${item.querySelector(".msg-text")?.textContent}`,
      ),
    );
}

/** The message `Author: text` in the open room. */
export function logLine(page: Page, line: string): Locator {
  const split = line.indexOf(": ");
  const author = line.slice(0, split);
  const text = line.slice(split + 2);
  return page
    .locator(`.msg[data-author=${JSON.stringify(author)}]`)
    .filter({ has: page.locator(".msg-text", { hasText: new RegExp(`^${escapeRegExp(text)}$`) }) });
}

export async function waitForLine(page: Page, line: string): Promise<void> {
  await logLine(page, line).waitFor({ timeout: WAIT_MS });
}

/** Names in "Online in #room", in the order shown. */
export async function onlineNames(page: Page, room: string): Promise<string[]> {
  return page
    .getByRole("list", { name: `Online in #${room}` })
    .locator("li")
    .evaluateAll((items) => items.map((item) => (item as HTMLElement).dataset.name ?? ""));
}

/** Waits until "Online in #room" shows exactly `names` (any order). */
export async function waitForOnline(page: Page, room: string, names: string[]): Promise<void> {
  const want = [...names].sort().join(", ");
  await eventually(`#${room} to show ${want} online`, async () => {
    const shown = await onlineNames(page, room).catch(() => []);
    return [...shown].sort().join(", ") === want ? true : undefined;
  });
}

/** The notice shown when the server could not replay a channel (`reset`). */
export function resetNotice(page: Page): Locator {
  return page.locator(".notice", { hasText: "could not be replayed" });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// --- screenshots --------------------------------------------------------------------------

const SCREENSHOTS = new URL("./screenshots/", import.meta.url);
const DOCS_IMAGES = new URL("../docs/images/", import.meta.url);

/**
 * Saves a screenshot to e2e/screenshots/ (gitignored); with `docsName` and
 * `UPDATE_DOCS_IMAGES=1`, also copies it to docs/images/ for the README. A test run leaves the
 * tree clean unless asked.
 */
export async function screenshot(page: Page, name: string, docsName?: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const path = fileURLToPath(new URL(name, SCREENSHOTS));
  // No hover effect where the last click was; the caret blinks and would make every picture
  // slightly different.
  await page.mouse.move(0, 0);
  await page.screenshot({ path, caret: "hide", animations: "disabled" });
  if (docsName) await copyToDocs(name, docsName);
}

/** Copies e2e/screenshots/<name> to docs/images/<docsName>, only when UPDATE_DOCS_IMAGES=1. */
export async function copyToDocs(name: string, docsName: string): Promise<void> {
  if (process.env.UPDATE_DOCS_IMAGES !== "1") return;
  await mkdir(DOCS_IMAGES, { recursive: true });
  await copyFile(
    fileURLToPath(new URL(name, SCREENSHOTS)),
    fileURLToPath(new URL(docsName, DOCS_IMAGES)),
  );
}

/**
 * Chromium logs a stream the test cut or a server the test stopped as a failed resource
 * ("net::ERR_INCOMPLETE_CHUNKED_ENCODING", "net::ERR_CONNECTION_REFUSED", …) on /api/events:
 * that is the disconnect being tested, not a page bug. With `refusedWith`, a stream refused
 * with that status (e.g. 401 after the server's key changed) is expected too. Anything else
 * still fails the test.
 */
export function exceptDisconnects(
  problems: readonly string[],
  options: { refusedWith?: number; postsRetried?: boolean } = {},
): string[] {
  const events = "\\(http://[^/]+/api/events\\?";
  const expected = [new RegExp(`^console error: .*net::ERR_[A-Z_]+ ${events}`)];
  if (options.postsRetried) {
    // A chat POST sent while the server was down, retried by the page until it answered.
    expected.push(
      /^console error: .*net::ERR_CONNECTION_REFUSED \(http:\/\/[^/]+\/api\/chat\/messages\)$/,
    );
  }
  if (options.refusedWith) {
    expected.push(
      new RegExp(
        `^console error: Failed to load resource: the server responded with a status of ${options.refusedWith} .*${events}`,
      ),
    );
  }
  return problems.filter((line) => !expected.some((pattern) => pattern.test(line)));
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
