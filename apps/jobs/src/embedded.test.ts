/**
 * The embedded job system without HTTP: thread deaths are retried then failed explicitly, a
 * render error fails at once, shutdown fails unfinished jobs — each with exactly one terminal
 * event.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { EventInput } from "@realtime/server";
import type { JobsConfig } from "./config.ts";
import { EmbeddedJobSystem, type EmbeddedJobSystemOptions } from "./embedded.ts";
import { testJobsConfig } from "./testing/config.ts";
import type { JobLogger } from "./types.ts";

const quiet: JobLogger = { info() {}, warn() {}, error() {} };
const TERMINAL = new Set(["generation_complete", "generation_failed", "generation_cancelled"]);

/** A system whose events land in an array; `waitTerminal` resolves on a job's terminal event. */
function system(settings: Partial<JobsConfig>, renderer?: EmbeddedJobSystemOptions["renderer"]) {
  const events: EventInput[] = [];
  const waiters = new Set<() => void>();
  const config = testJobsConfig(settings);
  const jobs = new EmbeddedJobSystem({
    config,
    log: quiet,
    renderer,
    publish: async (_userId, event) => {
      events.push(event);
      for (const wake of [...waiters]) wake();
      return true;
    },
  });
  const waitTerminal = (jobId: string, timeoutMs = 15_000) =>
    new Promise<EventInput>((resolve, reject) => {
      const check = () => {
        const hit = events.find((e) => e.jobId === jobId && TERMINAL.has(e.type));
        if (!hit) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(hit);
      };
      const timer = setTimeout(
        () => reject(new Error(`no terminal event for ${jobId}`)),
        timeoutMs,
      );
      waiters.add(check);
      check();
    });
  const terminalCount = (jobId: string) =>
    events.filter((e) => e.jobId === jobId && TERMINAL.has(e.type)).length;
  return { jobs, events, waitTerminal, terminalCount };
}

describe("EmbeddedJobSystem", () => {
  const systems: EmbeddedJobSystem[] = [];
  after(() => Promise.all(systems.map((j) => j.close())));

  it("retries a job whose render thread died, and the retry completes", async () => {
    const s = system({ maxAttempts: 2 }, (pool) => ({
      render: (spec, options) =>
        pool.render(spec, { ...options, crashAtFrame: options?.attempt === 1 ? 3 : undefined }),
    }));
    systems.push(s.jobs);
    const { jobId } = await s.jobs.submit("u_retry", { prompt: "retry me", aspectRatio: "1:1" });
    const terminal = await s.waitTerminal(jobId);
    assert.equal(terminal.type, "generation_complete");
    const retry = s.events.find((e) => e.jobId === jobId && e.attempt === 2);
    assert.match(String(retry?.message), /retrying \(attempt 2 of 2\)/);
    const record = await s.jobs.get("u_retry", jobId);
    assert.equal(record?.status, "completed");
    assert.equal(record?.attempt, 2);
    assert.equal(s.terminalCount(jobId), 1);
    // Progress never went down, across the retry.
    const progress = s.events
      .filter((e) => e.jobId === jobId)
      .map((e) => Number(e.progress ?? 100));
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
    );
  });

  it("fails with worker_lost once every attempt's thread died", async () => {
    const s = system({ maxAttempts: 2 }, (pool) => ({
      render: (spec, options) => pool.render(spec, { ...options, crashAtFrame: 2 }),
    }));
    systems.push(s.jobs);
    const { jobId } = await s.jobs.submit("u_lost", { prompt: "doomed", aspectRatio: "1:1" });
    const terminal = await s.waitTerminal(jobId);
    assert.equal(terminal.type, "generation_failed");
    assert.equal(terminal.code, "worker_lost");
    const record = await s.jobs.get("u_lost", jobId);
    assert.equal(record?.status, "failed");
    assert.equal(record?.error?.code, "worker_lost");
    assert.equal(s.terminalCount(jobId), 1);
  });

  it("fails a render error at once, without retrying", async () => {
    const s = system({ maxAttempts: 3 }, (pool) => ({
      render: (spec, options) => pool.render({ ...spec, width: 0 }, options),
    }));
    systems.push(s.jobs);
    const { jobId } = await s.jobs.submit("u_bad", { prompt: "bad", aspectRatio: "1:1" });
    const terminal = await s.waitTerminal(jobId);
    assert.equal(terminal.code, "render_failed");
    assert.equal((await s.jobs.get("u_bad", jobId))?.attempt, 1);
  });

  it("two users filling the queue do not starve a third: users take turns, not FIFO", async () => {
    // One render at a time; the first waits until everyone has submitted, so the order the
    // queue chose is the only thing that decides who goes next.
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    const s = system({ concurrency: 1, maxPerUser: 2 }, (pool) => ({
      render: async (spec, options) => {
        started.push(spec.prompt);
        await gate;
        return pool.render(spec, options);
      },
    }));
    systems.push(s.jobs);
    const submit = (user: string, prompt: string) =>
      s.jobs.submit(user, { prompt, aspectRatio: "1:1" });
    const jobs = [
      await submit("u_a", "a1"),
      await submit("u_a", "a2"),
      await submit("u_b", "b1"),
      await submit("u_b", "b2"),
      await submit("u_c", "c1"),
    ];
    release();
    for (const { jobId } of jobs) {
      assert.equal((await s.waitTerminal(jobId)).type, "generation_complete");
    }
    // FIFO was a1 a2 b1 b2 c1: c's only job waited for four others.
    assert.deepEqual(started, ["a1", "b1", "c1", "a2", "b2"]);
  });

  it("a user's second job waits only while another user's first is queued", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    const s = system({ concurrency: 1, maxPerUser: 3 }, (pool) => ({
      render: async (spec, options) => {
        started.push(spec.prompt);
        await gate;
        return pool.render(spec, options);
      },
    }));
    systems.push(s.jobs);
    const submit = (user: string, prompt: string) =>
      s.jobs.submit(user, { prompt, aspectRatio: "1:1" });
    const jobs = [await submit("u_a", "a1"), await submit("u_a", "a2"), await submit("u_a", "a3")];
    const late = await submit("u_b", "b1");
    release();
    for (const { jobId } of [...jobs, late]) await s.waitTerminal(jobId);
    // Alone, a user's jobs run back to back in their order; b1 goes right after a1.
    assert.deepEqual(started, ["a1", "b1", "a2", "a3"]);
  });

  it("on close, unfinished jobs fail with server_shutdown and threads stop", async () => {
    const s = system({ frames: 400, frameSize: 320, concurrency: 1 });
    const a = await s.jobs.submit("u_stop", { prompt: "long", aspectRatio: "16:9" });
    const b = await s.jobs.submit("u_stop", { prompt: "queued", aspectRatio: "16:9" });
    await s.jobs.close();
    for (const { jobId } of [a, b]) {
      const terminal = await s.waitTerminal(jobId);
      assert.equal(terminal.code, "server_shutdown");
      assert.equal(s.terminalCount(jobId), 1);
    }
    assert.equal(s.jobs.pool.threads, 0);
    await assert.rejects(s.jobs.submit("u_stop", { prompt: "late", aspectRatio: "1:1" }));
  });
});
