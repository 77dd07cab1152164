/**
 * A pool of worker threads that render GIFs (`render-worker.ts`), so rendering never runs on
 * the event loop that serves SSE. At most `size` renders run at once; more wait in order.
 *
 * - A finished thread is kept for the next render (idle threads do not keep the process up).
 * - Aborting a render terminates its thread at once, mid-frame; a fresh one replaces it later.
 * - A thread that dies without answering (exit, out of memory) rejects with
 *   {@link WorkerLostError}; the caller decides whether to retry. A render that throws
 *   rejects with {@link RenderError}.
 */
import { Worker } from "node:worker_threads";
import type { RenderReply, RenderRequest } from "./render-worker.ts";
import {
  RenderError,
  type Renderer,
  type RenderOptions,
  type RenderOutput,
  type RenderSpec,
  WorkerLostError,
} from "./types.ts";

export interface WorkerPoolOptions {
  /** Threads at most (renders at once). */
  readonly size: number;
  /** Least time between two progress reports of one render, in ms. */
  readonly progressIntervalMs: number;
}

const WORKER_URL = new URL("./render-worker.ts", import.meta.url);

export class WorkerPool implements Renderer {
  readonly #size: number;
  readonly #progressIntervalMs: number;
  readonly #threads = new Set<Worker>();
  readonly #idle: Worker[] = [];
  readonly #waiting: (() => void)[] = [];
  readonly #exitWaiters = new Set<() => void>();
  #busy = 0;
  #exits = 0;
  #closed = false;

  constructor(options: WorkerPoolOptions) {
    if (!Number.isSafeInteger(options.size) || options.size < 1) {
      throw new RangeError("pool size must be a positive integer");
    }
    this.#size = options.size;
    this.#progressIntervalMs = options.progressIntervalMs;
  }

  /** Renders running now. */
  get busy(): number {
    return this.#busy;
  }

  /** Live threads (busy or idle). */
  get threads(): number {
    return this.#threads.size;
  }

  /** Threads that have exited so far (terminated on abort, crashed, or closed). */
  get exits(): number {
    return this.#exits;
  }

  /** Resolves once `count` threads have exited in total (tests: "the thread stopped"). */
  waitForExits(count: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#exits < count) return;
        this.#exitWaiters.delete(check);
        resolve();
      };
      this.#exitWaiters.add(check);
      check();
    });
  }

  async render(spec: RenderSpec, options: RenderOptions = {}): Promise<RenderOutput> {
    const { signal } = options;
    signal?.throwIfAborted();
    const worker = await this.#acquire(signal);
    this.#busy++;
    try {
      return await this.#run(worker, spec, options);
    } finally {
      this.#busy--;
    }
  }

  /** Terminates every thread; renders in progress reject with {@link WorkerLostError}. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#waiting.splice(0)) wake();
    await Promise.all([...this.#threads].map((worker) => worker.terminate()));
  }

  /** An idle thread, a new one while under `size`, or the next one freed. */
  async #acquire(signal: AbortSignal | undefined): Promise<Worker> {
    for (;;) {
      if (this.#closed) throw new WorkerLostError("the worker pool is closed");
      signal?.throwIfAborted();
      const idle = this.#idle.pop();
      if (idle) return idle;
      if (this.#threads.size < this.#size) return this.#spawn();
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener("abort", wake);
          const at = this.#waiting.indexOf(wake);
          if (at >= 0) this.#waiting.splice(at, 1);
          resolve();
        };
        this.#waiting.push(wake);
        signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  #spawn(): Worker {
    const worker = new Worker(WORKER_URL);
    this.#threads.add(worker);
    worker.once("exit", () => {
      this.#exits++;
      for (const check of [...this.#exitWaiters]) check();
      this.#threads.delete(worker);
      const at = this.#idle.indexOf(worker);
      if (at >= 0) this.#idle.splice(at, 1);
      this.#waiting.shift()?.();
    });
    // An error event is followed by exit; the run's own listeners report it.
    worker.on("error", () => {});
    return worker;
  }

  #release(worker: Worker): void {
    if (!this.#threads.has(worker)) return;
    worker.unref();
    const waiter = this.#waiting.shift();
    this.#idle.push(worker);
    waiter?.();
  }

  #run(worker: Worker, spec: RenderSpec, options: RenderOptions): Promise<RenderOutput> {
    const { signal, onProgress } = options;
    worker.ref();
    return new Promise<RenderOutput>((resolve, reject) => {
      let settled = false;
      const settle = (finish: () => void) => {
        if (settled) return;
        settled = true;
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
        signal?.removeEventListener("abort", onAbort);
        finish();
      };
      const onMessage = (reply: RenderReply) => {
        if (reply.kind === "progress") {
          onProgress?.(reply.done, reply.total);
        } else if (reply.kind === "done") {
          const { bytes, width, height, frames } = reply;
          settle(() => {
            this.#release(worker);
            resolve({ bytes, width, height, frames });
          });
        } else {
          settle(() => {
            this.#release(worker);
            reject(new RenderError(reply.message));
          });
        }
      };
      const onError = (error: Error) => {
        settle(() => reject(new WorkerLostError(`render thread failed: ${error.message}`)));
      };
      const onExit = (code: number) => {
        settle(() => reject(new WorkerLostError(`render thread exited with code ${code}`)));
      };
      const onAbort = () => {
        settle(() => {
          // Stops the render mid-frame; the thread's exit frees its slot.
          void worker.terminate();
          reject(signal?.reason ?? new Error("aborted"));
        });
      };
      worker.on("message", onMessage);
      worker.once("error", onError);
      worker.once("exit", onExit);
      signal?.addEventListener("abort", onAbort, { once: true });
      const request: RenderRequest = {
        spec,
        progressIntervalMs: this.#progressIntervalMs,
        crashAtFrame: options.crashAtFrame,
      };
      worker.postMessage(request);
    });
  }
}
