/**
 * Browser side of the end-to-end tests: launches the system Chromium (never a downloaded one)
 * and drives the demo page the way a person would. Every wait is a Playwright auto-waiting
 * locator or a poll with a deadline; nothing sleeps for a fixed time.
 */
import { existsSync } from "node:fs";
import {
  type Browser,
  type BrowserContext,
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

/** One person with their own browser context (own cookies, own connections). */
export interface User {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Console errors and uncaught page errors seen so far, as readable lines. */
  readonly problems: string[];
  close(): Promise<void>;
}

export async function openUser(browser: Browser): Promise<User> {
  const context = await browser.newContext({
    viewport: { width: 760, height: 560 },
    deviceScaleFactor: 1,
    colorScheme: "light",
    locale: "en-US",
  });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const where = message.location().url;
    problems.push(`console error: ${message.text()}${where ? ` (${where})` : ""}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.stack ?? error.message}`));
  return { context, page, problems, close: () => context.close() };
}

/** Opens the demo page, types `name`, clicks "Sign in" and waits for the stream to connect. */
export async function signIn(page: Page, baseUrl: string, name: string): Promise<void> {
  await page.goto(`${baseUrl}/`);
  await page.getByLabel("Your name").fill(name);
  await page.getByRole("button", { name: "Sign in" }).click();
  await waitForStatus(page, "connected");
  await page.locator("#me", { hasText: name }).waitFor({ timeout: WAIT_MS });
}

/** Types a message in the page and clicks "Send"; waits until the page cleared the input. */
export async function sendMessage(page: Page, content: string): Promise<void> {
  const input = page.getByPlaceholder("Say something");
  await input.fill(content);
  await page.getByRole("button", { name: "Send" }).click();
  // app.js clears the input once the POST succeeded.
  await page.waitForFunction(
    () => (document.getElementById("message") as HTMLInputElement).value === "",
    undefined,
    { timeout: WAIT_MS },
  );
}

/** The status line with exactly `text`. */
export async function waitForStatus(page: Page, text: string): Promise<void> {
  await page
    .locator("#status", { hasText: new RegExp(`^${escapeRegExp(text)}$`) })
    .waitFor({ timeout: WAIT_MS });
}

/** The log line whose whole text is `text`. */
export function logLine(page: Page, text: string): Locator {
  return page.locator("#log li", { hasText: new RegExp(`^${escapeRegExp(text)}$`) });
}

export async function waitForLine(page: Page, text: string): Promise<void> {
  await logLine(page, text).waitFor({ timeout: WAIT_MS });
}

export async function logLines(page: Page): Promise<string[]> {
  return page.locator("#log li").allTextContents();
}

/**
 * Records every text the status line shows from now on, so a state that lasts only a few
 * hundred milliseconds ("reconnecting…") can be asserted afterwards without racing it.
 */
export async function recordStatus(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const status = document.getElementById("status") as HTMLElement;
    const seen: string[] = [status.textContent ?? ""];
    (window as unknown as { __statusSeen: string[] }).__statusSeen = seen;
    new MutationObserver(() => seen.push(status.textContent ?? "")).observe(status, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  return () =>
    page.evaluate(() => [...(window as unknown as { __statusSeen: string[] }).__statusSeen]);
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

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
