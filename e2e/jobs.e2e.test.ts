/**
 * "Generate" in the system Chromium against the real service and its job system (worker
 * threads in the embedded pod): the progress bar is driven by the job's `generation_progress`
 * events on the user's own channel, reaches 100%, and the result (a GIF) is shown; a running
 * job can be cancelled.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { startService } from "../apps/service/src/testing/harness.ts";
import {
  eventually,
  launchBrowser,
  openUser,
  screenshot,
  sendMessage,
  signIn,
  WAIT_MS,
} from "./browser.ts";
import { prepareWebApp } from "./services.ts";

/** Long enough to watch the bar move (progress at most every 40 ms), short enough for a test. */
const JOBS = {
  JOBS_FRAMES: "40",
  JOBS_FRAME_SIZE: "240",
  JOBS_PROGRESS_INTERVAL_MS: "40",
  JOBS_CONCURRENCY: "2",
};

function job(page: Page, prompt: string) {
  return page.getByRole("listitem", { name: `Job: ${prompt}` });
}

async function progressOf(page: Page, prompt: string): Promise<number> {
  const value = await job(page, prompt)
    .getByRole("progressbar")
    .getAttribute("aria-valuenow", { timeout: WAIT_MS });
  return Number(value);
}

async function generate(page: Page, prompt: string, aspectRatio: string): Promise<void> {
  await page.getByLabel("Prompt").fill(prompt);
  await page.getByLabel("Aspect ratio").selectOption(aspectRatio);
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await job(page, prompt).waitFor({ timeout: WAIT_MS });
}

describe("web app in Chromium: jobs", { timeout: 60_000 }, () => {
  let browser: Browser;
  before(async () => {
    [browser] = await Promise.all([launchBrowser(), prepareWebApp()]);
  });
  after(async () => {
    await browser?.close();
  });

  test("a job's progress bar fills from its events, the result shows, and a job can be cancelled", async () => {
    const svc = await startService(JOBS);
    // Tall enough for a running job above a finished one with its picture.
    const ada = await openUser(browser, { viewport: { width: 1200, height: 900 } });
    try {
      const { page } = ada;
      await signIn(page, svc.url, "Ada");

      // Every value the bar shows, recorded in the page as it changes.
      await page.evaluate(() => {
        const seen: number[] = [];
        (window as unknown as { __progress: number[] }).__progress = seen;
        new MutationObserver((records) => {
          for (const record of records) {
            const value = (record.target as HTMLElement).getAttribute("aria-valuenow");
            if (value !== null) seen.push(Number(value));
          }
        }).observe(document.body, {
          subtree: true,
          attributes: true,
          attributeFilter: ["aria-valuenow"],
        });
      });

      // A job cancelled while it runs: the bar goes, "Cancelled" stays.
      const cancelled = "Northern lights over a frozen lake";
      await generate(page, cancelled, "1:1");
      await eventually("the job to start", async () =>
        (await progressOf(page, cancelled)) > 0 ? true : undefined,
      );
      await job(page, cancelled)
        .getByRole("button", { name: `Cancel ${cancelled}` })
        .click();
      await job(page, cancelled).getByText("Cancelled").waitFor({ timeout: WAIT_MS });
      assert.equal(await job(page, cancelled).getByRole("progressbar").count(), 0);

      // A job that runs to the end: the bar fills from its events, then the GIF shows.
      await page.evaluate(() => {
        (window as unknown as { __progress: number[] }).__progress.length = 0;
      });
      const done = "A paper boat on a stormy sea";
      await generate(page, done, "16:9");
      const result = job(page, done).getByRole("img", { name: `Generated: ${done}` });
      await result.waitFor({ timeout: 20_000 });
      assert.equal(await progressOf(page, done), 100);
      const seen = await page.evaluate(
        () => (window as unknown as { __progress: number[] }).__progress,
      );
      assert.ok(seen.length >= 3, `the bar moved in steps: ${JSON.stringify(seen)}`);
      assert.ok(
        seen.some((value) => value > 0 && value < 100),
        "intermediate progress shown",
      );
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        seen,
        "progress never goes back",
      );
      assert.equal(seen.at(-1), 100);
      // The GIF loaded (same origin: the session cookie authorises it).
      const size = await result.evaluate((img) => {
        const image = img as HTMLImageElement;
        return { complete: image.complete, width: image.naturalWidth, height: image.naturalHeight };
      });
      assert.deepEqual(size, { complete: true, width: 240, height: 136 });
      await job(page, done).getByText("Done").waitFor();

      // The picture for the docs: a job on its way above the finished one.
      await sendMessage(page, "Rendering a few animations: watch the progress bars");
      const running = "A hot-air balloon drifting over hills";
      await generate(page, running, "4:3");
      await eventually(
        "the job halfway",
        async () => {
          const value = await progressOf(page, running);
          return value >= 30 && value <= 80 ? value : undefined;
        },
        20_000,
      );
      await screenshot(page, "job.png", "job.png");
      await job(page, running).getByRole("img").waitFor({ timeout: 20_000 });
      assert.deepEqual(ada.problems, [], "no console errors and no page errors");
    } finally {
      await ada.close();
      await svc.stop();
    }
  });
});
