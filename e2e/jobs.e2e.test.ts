/**
 * "Generate" in the system Chromium against the real service and its job system (worker
 * threads in the embedded pod): the progress bar is driven by the job's `generation_progress`
 * events on the user's own channel, reaches 100%, and the result (a GIF) is shown; a running
 * job can be cancelled.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { prepareWebApp, startService } from "@realtime/testkit/service";
import type { Browser, Page } from "playwright-core";
import {
  copyToDocs,
  launchBrowser,
  openUser,
  screenshot,
  sendMessage,
  signIn,
  WAIT_MS,
} from "./browser.ts";

/**
 * Long enough to watch the bar move (progress at most every 40 ms; about 2 s a job), short
 * enough for a test.
 * One render at a time, so a second job waits in the queue until the first is done.
 */
const JOBS = {
  JOBS_FRAMES: "96",
  JOBS_FRAME_SIZE: "240",
  JOBS_PROGRESS_INTERVAL_MS: "40",
  JOBS_CONCURRENCY: "1",
};

function job(page: Page, prompt: string) {
  return page.getByRole("listitem", { name: `Job: ${prompt}` });
}

async function generate(page: Page, prompt: string, aspectRatio: string): Promise<void> {
  await page.getByLabel("Prompt").fill(prompt);
  await page.getByLabel("Aspect ratio").selectOption(aspectRatio);
  await page.getByRole("button", { name: "Generate", exact: true }).click();
  await job(page, prompt).waitFor({ timeout: WAIT_MS });
}

/** Every value each progress bar showed, recorded in the page as it changed. */
async function recordProgress(page: Page): Promise<(prompt: string) => Promise<number[]>> {
  await page.evaluate(() => {
    const seen: Record<string, number[]> = {};
    (window as unknown as { __progress: typeof seen }).__progress = seen;
    new MutationObserver((records) => {
      for (const record of records) {
        const bar = record.target as HTMLElement;
        const label = bar.getAttribute("aria-label") ?? "";
        const value = bar.getAttribute("aria-valuenow");
        if (value === null) continue;
        seen[label] ??= [];
        seen[label].push(Number(value));
      }
    }).observe(document.body, {
      subtree: true,
      attributes: true,
      attributeFilter: ["aria-valuenow"],
    });
  });
  return (prompt) =>
    page.evaluate(
      (label) =>
        (window as unknown as { __progress: Record<string, number[]> }).__progress[label] ?? [],
      `Progress of ${prompt}`,
    );
}

/** Waits, in the page at every frame, until the job's bar shows a value in [min, max]. */
async function waitForProgress(page: Page, prompt: string, min: number, max: number) {
  await page.waitForFunction(
    ({ label, min, max }) => {
      const bar = document.querySelector(`[role="progressbar"][aria-label="${label}"]`);
      const value = Number(bar?.getAttribute("aria-valuenow") ?? -1);
      return value >= min && value <= max;
    },
    { label: `Progress of ${prompt}`, min, max },
    { polling: "raf", timeout: 20_000 },
  );
}

/**
 * Waits until the job's result picture shows, as long as its progress bar keeps moving: a
 * render is CPU time, several times longer on a busy machine, so a fixed deadline would fail a
 * slow machine; a bar that stands still for 10 s fails.
 */
async function waitForResult(page: Page, prompt: string): Promise<void> {
  const picture = job(page, prompt).getByRole("img");
  let last: string | null = null;
  let movedAt = Date.now();
  while (!(await picture.isVisible())) {
    const now = await page.evaluate(
      (label) =>
        document
          .querySelector(`[role="progressbar"][aria-label="${label}"]`)
          ?.getAttribute("aria-valuenow") ?? null,
      `Progress of ${prompt}`,
    );
    if (now !== last) {
      last = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > 10_000) {
      throw new Error(`the job "${prompt}" stood at ${last}% for 10 s without a result`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// A GIF job on a busy machine (test:stress) takes well over the half minute it takes alone.
describe("web app in Chromium: jobs", { timeout: 180_000 }, () => {
  let browser: Browser;
  before(async () => {
    [browser] = await Promise.all([launchBrowser(), prepareWebApp()]);
  });
  after(async () => {
    await browser?.close();
  });

  test("a job's progress bar fills from its events to 100%, the result shows, a queued job is cancelled", async () => {
    const svc = await startService(JOBS);
    // Tall enough for a running job above a finished one with its picture.
    const ada = await openUser(browser, { viewport: { width: 1200, height: 960 } });
    try {
      const { page } = ada;
      await signIn(page, svc.url, "Ada");

      const progressOf = await recordProgress(page);

      // A job that runs to the end, and behind it in the queue one that is cancelled there.
      const done = "A paper boat on a stormy sea";
      const cancelled = "Northern lights over a frozen lake";
      await generate(page, done, "16:9");
      await generate(page, cancelled, "1:1");
      await job(page, cancelled)
        .getByRole("button", { name: `Cancel ${cancelled}` })
        .click();
      await job(page, cancelled).getByText("Cancelled").waitFor({ timeout: WAIT_MS });
      assert.equal(await job(page, cancelled).getByRole("progressbar").count(), 0);

      // The first one's bar fills from its events, then the GIF shows.
      const result = job(page, done).getByRole("img", { name: `Generated: ${done}` });
      await waitForResult(page, done);
      const seen = await progressOf(done);
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
      assert.equal(seen.at(-1), 100, "the bar reached 100%");
      await job(page, done).getByText("100%").waitFor();
      await job(page, done).getByText("Done").waitFor();
      // The GIF loaded (same origin: the session cookie authorises it).
      const size = await result.evaluate((img) => {
        const image = img as HTMLImageElement;
        return { complete: image.complete, width: image.naturalWidth, height: image.naturalHeight };
      });
      assert.deepEqual(size, { complete: true, width: 240, height: 136 });
      await job(page, done).getByText("96 frames", { exact: false }).waitFor();

      // The picture for the docs: a job on its way above the finished one.
      await sendMessage(page, "Rendering a few animations: watch the progress bars");
      const running = "A hot-air balloon drifting over hills";
      await generate(page, running, "4:3");
      await waitForProgress(page, running, 35, 70);
      await screenshot(page, "job.png");
      // Only a picture of the bar on its way is worth keeping (a loaded machine may be slower
      // to take it than the job is to finish).
      const stillRunning = (await job(page, running).getAttribute("data-status")) === "running";
      if (stillRunning) await copyToDocs("job.png", "job.png");
      await waitForResult(page, running);
      assert.deepEqual(ada.problems, [], "no console errors and no page errors");
    } finally {
      await ada.close();
      await svc.stop();
    }
  });
});
