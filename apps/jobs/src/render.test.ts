import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProgressThrottle, percentOf } from "./progress.ts";
import { frameSize, renderGif, sceneFor } from "./render.ts";
import { inspectGif } from "./testing/gif-inspect.ts";

describe("ProgressThrottle", () => {
  it("reports at most once per interval, only rising, and always the last frame", () => {
    let now = 0;
    const throttle = new ProgressThrottle(250, () => now);
    const reported: number[] = [];
    // 1000 fast frames, 1 ms each: one report per 250 ms plus the end, not one per frame.
    for (let done = 1; done <= 1000; done++) {
      now = done;
      if (throttle.shouldReport(done, 1000)) reported.push(percentOf(done, 1000));
    }
    assert.deepEqual(reported, [0, 25, 50, 75, 100]);
  });

  it("reports each visible step of a slow render", () => {
    let now = 0;
    const throttle = new ProgressThrottle(250, () => now);
    const reported: number[] = [];
    for (let done = 1; done <= 4; done++) {
      now += 1000;
      if (throttle.shouldReport(done, 4)) reported.push(percentOf(done, 4));
    }
    assert.deepEqual(reported, [25, 50, 75, 100]);
  });

  it("percentOf reaches 100 only when everything is done", () => {
    assert.equal(percentOf(999, 1000), 99);
    assert.equal(percentOf(1000, 1000), 100);
    assert.equal(percentOf(0, 10), 0);
  });
});

describe("renderGif", () => {
  it("sizes frames by aspect ratio, long side fixed, even sides", () => {
    assert.deepEqual(frameSize("16:9", 320), { width: 320, height: 180 });
    assert.deepEqual(frameSize("9:16", 320), { width: 180, height: 320 });
    assert.deepEqual(frameSize("1:1", 100), { width: 100, height: 100 });
    assert.deepEqual(frameSize("4:3", 100), { width: 100, height: 76 });
    assert.throws(() => frameSize("2:1", 100), RangeError);
  });

  it("the prompt decides the scene: same prompt same frames, other prompt other frames", () => {
    assert.deepEqual(sceneFor("a cat playing piano"), sceneFor("a cat playing piano"));
    assert.notDeepEqual(sceneFor("a cat playing piano"), sceneFor("a dog playing drums"));
    const spec = { aspectRatio: "4:3", width: 64, height: 48, frames: 3, delayMs: 80 };
    const a = renderGif({ ...spec, prompt: "one" });
    const b = renderGif({ ...spec, prompt: "one" });
    const c = renderGif({ ...spec, prompt: "two" });
    assert.deepEqual(a.bytes, b.bytes);
    assert.notDeepEqual(a.bytes, c.bytes);
  });

  it("encodes every frame into a complete GIF89a and reports each one", () => {
    const done: number[] = [];
    const out = renderGif(
      { prompt: "p", aspectRatio: "1:1", width: 40, height: 40, frames: 4, delayMs: 80 },
      { onFrame: (n) => done.push(n) },
    );
    assert.deepEqual(done, [1, 2, 3, 4]);
    assert.deepEqual(inspectGif(out.bytes), {
      version: "GIF89a",
      width: 40,
      height: 40,
      frames: 4,
      complete: true,
    });
    assert.throws(() => inspectGif(out.bytes.subarray(0, out.bytes.length - 20)), /truncated/);
  });
});
