/**
 * Redis mode with real processes: two pods (`main.ts`) and render workers (`worker-main.ts`,
 * i.e. `npm run worker`) on a private redis-server. Jobs cross pods, cancellation reaches the
 * worker, and a worker SIGKILLed mid-job gets its job retried by a new worker — or failed
 * explicitly once the attempts are used up — with the client told either way. Users take
 * turns in the queue (on the shared Redis, under a prefix of its own).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { inspectGif } from "@realtime/jobs/testing";
import type { TestChild } from "@realtime/testkit/child-process";
import { type Pod, startPod, withPods } from "@realtime/testkit/pods";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { openHttp1, type SseClient, waitWhileMoving } from "@realtime/testkit/sse-client";
import { startWorker } from "@realtime/testkit/worker";
import type { EventSourceMessage } from "eventsource-parser";
import { Redis } from "ioredis";

interface JobEvent {
  type: string;
  jobId: string;
  progress?: number;
  attempt?: number;
  code?: string;
  result?: { url: string; width: number; height: number; frames: number; bytes: number };
}

const TERMINAL = new Set(["generation_complete", "generation_failed", "generation_cancelled"]);
const parse = (e: EventSourceMessage): JobEvent | null =>
  e.event === undefined ? (JSON.parse(e.data) as JobEvent) : null;
const eventsOf = (stream: SseClient, jobId: string) =>
  stream.events.map(parse).filter((e): e is JobEvent => e?.jobId === jobId);
const matching = (jobId: string, test: (e: JobEvent) => boolean) => (m: EventSourceMessage) => {
  const e = parse(m);
  return e !== null && e.jobId === jobId && test(e);
};
const terminal = (jobId: string) => matching(jobId, (e) => TERMINAL.has(e.type));

describe("jobs in Redis mode (pod and worker processes)", () => {
  let redis: TestRedis;
  let fastPod: Pod;
  let slowPod: Pod;
  let env: Record<string, string>;
  const workers: TestChild[] = [];
  let token = "";
  let userId = "";

  const api = async (pod: { url: string }, method: string, path: string, body?: unknown) => {
    const response = await fetch(`${pod.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : null,
    });
    return response;
  };
  const submit = async (pod: { url: string }, prompt: string): Promise<string> => {
    const response = await api(pod, "POST", "/api/generate/video", { prompt });
    assert.equal(response.status, 202);
    return ((await response.json()) as { jobId: string }).jobId;
  };
  const stream = async (pod: { url: string }, cursor?: string) => {
    const client = await openHttp1(`${pod.url}/api/events?channel=user:${userId}`, {
      authorization: `Bearer ${token}`,
      ...(cursor ? { "last-event-id": cursor } : {}),
    });
    assert.equal(client.status, 200);
    return client;
  };
  const worker = async () => {
    const started = await startWorker(env);
    workers.push(started);
    return started;
  };
  const status = async (jobId: string) =>
    (await (await api(fastPod, "GET", `/api/jobs/${jobId}`)).json()) as {
      status: string;
      attempt: number;
      error?: { code: string };
    };

  before(async () => {
    redis = await startRedis();
    env = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: "rtjobs",
      JOBS_LOCK_MS: "1000",
      JOBS_MAX_ATTEMPTS: "2",
      JOBS_PROGRESS_INTERVAL_MS: "100",
      JOBS_CONCURRENCY: "1",
    };
    // The pod that accepts a job fixes its size: one for quick jobs, one for slow ones.
    [fastPod, slowPod] = (await withPods(2, (i) => ({
      ...env,
      ...(i === 0
        ? { JOBS_FRAMES: "24", JOBS_FRAME_SIZE: "128" }
        : { JOBS_FRAMES: "240", JOBS_FRAME_SIZE: "320" }),
    }))) as [Pod, Pod];
    await worker();
    const login = await fetch(`${fastPod.url}/api/auth/dev-login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Redis" }),
    });
    ({ token } = (await login.json()) as { token: string });
    userId = (
      JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as {
        sub: string;
      }
    ).sub;
  });

  after(async () => {
    await Promise.all([...workers, fastPod, slowPod].map((p) => p?.kill("SIGKILL")));
    await redis?.stop();
  });

  it("a job posted on one pod renders in the worker; the other pod streams it and serves the GIF", async () => {
    const watcher = await stream(slowPod);
    const jobId = await submit(fastPod, "across pods");
    await watcher.waitFor(terminal(jobId), 30_000);
    const events = eventsOf(watcher, jobId);
    const progress = events.filter((e) => e.type === "generation_progress").map((e) => e.progress);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => (a ?? 0) - (b ?? 0)),
    );
    assert.equal(progress.at(-1), 100);
    const done = events.at(-1);
    assert.equal(done?.type, "generation_complete");
    assert.equal(events.filter((e) => TERMINAL.has(e.type)).length, 1);
    const result = done?.result;
    assert.ok(result);
    const media = await api(slowPod, "GET", result.url);
    assert.equal(media.status, 200);
    const bytes = new Uint8Array(await media.arrayBuffer());
    assert.equal(bytes.byteLength, result.bytes);
    assert.deepEqual(inspectGif(bytes), {
      version: "GIF89a",
      width: 128,
      height: 72,
      frames: 24,
      complete: true,
    });
    watcher.close();
  });

  it("cancel on a pod stops the job in the worker process; the worker takes the next job", async () => {
    const watcher = await stream(fastPod);
    const jobId = await submit(slowPod, "cancel me");
    await watcher.waitFor(
      matching(jobId, (e) => (e.progress ?? 0) > 0),
      30_000,
    );
    const response = await api(fastPod, "DELETE", `/api/jobs/${jobId}`);
    assert.equal(((await response.json()) as { status: string }).status, "cancelled");
    const end = await watcher.waitFor(terminal(jobId), 5_000);
    assert.equal(parse(end)?.type, "generation_cancelled");
    await workers[0]?.waitFor(`"jobId":"${jobId}","outcome":"cancelled"`, 5_000);
    // The single render slot is free again: a new job runs to completion.
    const next = await submit(fastPod, "after the cancel");
    await watcher.waitFor(
      matching(next, (e) => e.type === "generation_complete"),
      30_000,
    );
    assert.equal((await status(jobId)).status, "cancelled");
    assert.equal(eventsOf(watcher, jobId).filter((e) => TERMINAL.has(e.type)).length, 1);
    watcher.close();
  });

  it("SIGKILL mid-job: a new worker retries it; a reconnecting client resumes, terminal once", async () => {
    const observer = await stream(fastPod);
    const client = await stream(slowPod);
    const jobId = await submit(slowPod, "survive a crash");
    await client.waitFor(
      matching(jobId, (e) => (e.progress ?? 0) >= 5),
      30_000,
    );
    client.close();
    const cursor = client.lastEventId();
    await workers[0]?.kill("SIGKILL");
    await worker();
    await observer.waitFor(
      matching(jobId, (e) => e.attempt === 2),
      30_000,
    );
    assert.equal((await status(jobId)).status, "running");
    // Back on another pod, from the cursor: the missed events, then live to the end.
    const resumed = await stream(fastPod, cursor);
    // The whole retry renders meanwhile (CPU time, several times longer on a busy machine):
    // waited for as long as the job keeps moving, failed if it stops for 10 s.
    const end = await waitWhileMoving(
      resumed,
      terminal(jobId),
      matching(jobId, () => true),
    );
    assert.equal(parse(end)?.type, "generation_complete");
    await observer.waitFor(terminal(jobId), 5_000);
    const all = eventsOf(observer, jobId);
    assert.deepEqual([...eventsOf(client, jobId), ...eventsOf(resumed, jobId)], all);
    assert.equal(eventsOf(resumed, jobId).filter((e) => TERMINAL.has(e.type)).length, 1);
    const progress = all.map((e) => e.progress ?? 100);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
      "never goes down",
    );
    const final = await status(jobId);
    assert.deepEqual([final.status, final.attempt], ["completed", 2]);
    const media = await api(slowPod, "GET", `/api/media/${jobId}`);
    assert.equal(inspectGif(new Uint8Array(await media.arrayBuffer())).frames, 240);
    observer.close();
    resumed.close();
  });

  it("a job whose worker dies on every attempt fails with worker_lost, and the client hears it", async () => {
    const watcher = await stream(fastPod);
    const jobId = await submit(slowPod, "cursed");
    await watcher.waitFor(
      matching(jobId, (e) => (e.progress ?? 0) > 0),
      30_000,
    );
    await workers.at(-1)?.kill("SIGKILL");
    await worker();
    await watcher.waitFor(
      matching(jobId, (e) => e.attempt === 2),
      30_000,
    );
    await workers.at(-1)?.kill("SIGKILL");
    await worker();
    const end = await watcher.waitFor(terminal(jobId), 30_000);
    assert.deepEqual([parse(end)?.type, parse(end)?.code], ["generation_failed", "worker_lost"]);
    const final = await status(jobId);
    assert.deepEqual([final.status, final.error?.code], ["failed", "worker_lost"]);
    assert.equal(eventsOf(watcher, jobId).filter((e) => TERMINAL.has(e.type)).length, 1);
    // The user's slot is free again.
    const next = await submit(fastPod, "fine again");
    await watcher.waitFor(
      matching(next, (e) => e.type === "generation_complete"),
      30_000,
    );
    watcher.close();
  });
});

describe("the Redis job queue takes users in turns", () => {
  const prefix = `t_turns_${randomBytes(4).toString("hex")}`;
  const env = {
    REDIS_URL: "redis://127.0.0.1:6379",
    REDIS_PREFIX: prefix,
    JOBS_CONCURRENCY: "1",
    JOBS_FRAMES: "2",
    JOBS_FRAME_SIZE: "32",
  };
  const processes: (Pod | TestChild)[] = [];
  after(async () => {
    await Promise.all(processes.map((p) => p.kill("SIGKILL")));
    const redis = new Redis(env.REDIS_URL);
    for (const pattern of [`${prefix}:*`, `{${prefix}-jobs}:*`]) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
    }
    redis.disconnect();
  });

  it("two users with full queues do not starve a third: every first job before any second", async () => {
    const pod = await startPod(env);
    processes.push(pod);
    const login = async (name: string) => {
      const response = await fetch(`${pod.url}/api/auth/dev-login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name }),
      });
      return ((await response.json()) as { token: string }).token;
    };
    const [a, b, c] = await Promise.all(["A", "B", "C"].map(login));
    const label = new Map<string, string>();
    // Queued before any worker runs: the queue alone decides the order.
    for (const [token, name] of [
      [a, "a1"],
      [a, "a2"],
      [b, "b1"],
      [b, "b2"],
      [c, "c1"],
    ] as const) {
      const response = await fetch(`${pod.url}/api/generate/video`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ prompt: name }),
      });
      assert.equal(response.status, 202, name);
      label.set(((await response.json()) as { jobId: string }).jobId, name);
    }
    const worker = await startWorker(env);
    processes.push(worker);
    await worker.waitFor(/(job ended[\s\S]*){5}/, 30_000);
    const taken = [...worker.output().matchAll(/"jobId":"([^"]+)"[^\n]*"msg":"job taken"/g)].map(
      (m) => label.get(m[1] ?? ""),
    );
    // FIFO took a1 a2 b1 b2 c1: c's only job waited behind four.
    assert.deepEqual(taken, ["a1", "b1", "c1", "a2", "b2"]);
  });
});
