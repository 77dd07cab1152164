import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { WorkerPool } from "./pool.ts";
import { frameSize } from "./render.ts";
import { inspectGif } from "./testing/gif-inspect.ts";
import { RenderError, type RenderSpec, WorkerLostError } from "./types.ts";

function spec(prompt: string, frames: number, longSide = 96, aspectRatio = "16:9"): RenderSpec {
  return { prompt, aspectRatio, frames, delayMs: 80, ...frameSize(aspectRatio, longSide) };
}

describe("WorkerPool", () => {
  const pool = new WorkerPool({ size: 2, progressIntervalMs: 0 });
  after(() => pool.close());

  it("renders a valid GIF in a thread, reporting every frame when the interval is 0", async () => {
    const progress: number[] = [];
    const out = await pool.render(spec("pool test", 5, 96, "9:16"), {
      onProgress: (done, total) => progress.push(done / total),
    });
    assert.deepEqual(progress, [0.2, 0.4, 0.6, 0.8, 1]);
    const info = inspectGif(out.bytes);
    assert.deepEqual(info, { version: "GIF89a", width: 54, height: 96, frames: 5, complete: true });
    assert.equal(pool.busy, 0);
  });

  it("runs at most `size` renders at once; the rest wait their turn", async () => {
    let peak = 0;
    const watch = () => {
      peak = Math.max(peak, pool.busy);
    };
    const outs = await Promise.all(
      [1, 2, 3, 4].map((n) => pool.render(spec(`job ${n}`, 4), { onProgress: watch })),
    );
    assert.equal(outs.length, 4);
    assert.ok(peak <= 2, `peak ${peak}`);
    assert.ok(pool.threads <= 2);
  });

  it("abort terminates the thread mid-render", async () => {
    const controller = new AbortController();
    const exitsBefore = pool.exits;
    const running = pool.render(spec("abort me", 400, 320), {
      signal: controller.signal,
      onProgress: () => controller.abort(new Error("cancelled")),
    });
    await assert.rejects(running, /cancelled/);
    assert.equal(pool.busy, 0);
    // The aborted thread exits (terminated, not left to finish); the pool still works.
    await pool.waitForExits(exitsBefore + 1);
    const out = await pool.render(spec("after abort", 2));
    assert.equal(inspectGif(out.bytes).frames, 2);
  });

  it("a thread that dies rejects with WorkerLostError; a bad spec with RenderError", async () => {
    await assert.rejects(pool.render(spec("crash", 6), { crashAtFrame: 2 }), WorkerLostError);
    await assert.rejects(pool.render({ ...spec("bad", 2), width: 0 }), RenderError);
    const out = await pool.render(spec("still fine", 2));
    assert.equal(inspectGif(out.bytes).frames, 2);
  });
});
