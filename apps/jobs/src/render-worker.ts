/**
 * Worker-thread entry: renders one job at a time on request from `WorkerPool`. Progress is
 * throttled here, so the pool's thread (the SSE event loop in embedded mode) wakes a few times
 * per second per job, not once per frame.
 *
 * Messages in: `{ spec, progressIntervalMs, crashAtFrame? }`. Out: `{ kind: "progress", done,
 * total }`, then `{ kind: "done", bytes, width, height, frames }` (bytes transferred, not
 * copied) or `{ kind: "error", message }`.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { ProgressThrottle } from "./progress.ts";
import { renderGif } from "./render.ts";
import type { RenderSpec } from "./types.ts";

export interface RenderRequest {
  readonly spec: RenderSpec;
  readonly progressIntervalMs: number;
  readonly crashAtFrame?: number | undefined;
}

export type RenderReply =
  | { readonly kind: "progress"; readonly done: number; readonly total: number }
  | {
      readonly kind: "done";
      readonly bytes: Uint8Array;
      readonly width: number;
      readonly height: number;
      readonly frames: number;
    }
  | { readonly kind: "error"; readonly message: string };

/** Nice value of render threads: the kernel favours the event loop when CPUs are short. */
const RENDER_NICE = 10;

/**
 * Linux: lower this thread's scheduling priority (a thread id works as a pid for
 * setpriority). Best effort; other systems keep the default.
 */
function lowerPriority(): void {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, RENDER_NICE);
  } catch {
    // not Linux, or not allowed: run at normal priority
  }
}

const port = parentPort;
if (port) {
  lowerPriority();
  port.on("message", (request: RenderRequest) => {
    const throttle = new ProgressThrottle(request.progressIntervalMs);
    try {
      const output = renderGif(request.spec, {
        beforeFrame(index) {
          // Tests: die like a thread that ran out of memory, without a word to the pool.
          if (index === request.crashAtFrame) process.exit(70);
        },
        onFrame(done, total) {
          if (throttle.shouldReport(done, total)) {
            port.postMessage({ kind: "progress", done, total } satisfies RenderReply);
          }
        },
      });
      const reply: RenderReply = { kind: "done", ...output };
      port.postMessage(reply, [output.bytes.buffer as ArrayBuffer]);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      port.postMessage({ kind: "error", message } satisfies RenderReply);
    }
  });
}
