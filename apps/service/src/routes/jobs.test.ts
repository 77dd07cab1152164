/**
 * Async jobs end to end in embedded mode, over real sockets: POST a job, follow it on the
 * user's SSE stream, fetch the GIF; limits, validation, ownership, cancellation and resuming
 * mid-job with a cursor.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { EmbeddedJobSystem } from "@realtime/jobs";
import { inspectGif } from "@realtime/jobs/testing";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp1, type SseClient, waitWhileMoving } from "@realtime/testkit/sse-client";
import type { EventSourceMessage } from "eventsource-parser";

interface JobEvent {
  type: string;
  jobId: string;
  progress?: number;
  message?: string;
  code?: string;
  result?: { url: string; width: number; height: number; frames: number; bytes: number };
}

const TERMINAL = new Set(["generation_complete", "generation_failed", "generation_cancelled"]);
const jobEvents = (stream: SseClient, jobId: string): JobEvent[] =>
  stream.events
    .filter((e) => e.event === undefined)
    .map((e) => JSON.parse(e.data) as JobEvent)
    .filter((e) => e.jobId === jobId);
const isTerminalOf = (jobId: string) => (e: EventSourceMessage) => {
  if (e.event !== undefined) return false;
  const data = JSON.parse(e.data) as JobEvent;
  return data.jobId === jobId && TERMINAL.has(data.type);
};
const isEventOf = (jobId: string) => (e: EventSourceMessage) =>
  e.event === undefined && (JSON.parse(e.data) as JobEvent).jobId === jobId;
/**
 * The job's terminal event on `stream`, waited for as long as the job keeps moving: a render is
 * CPU time, several times longer on a busy machine; a job that stops moving fails in 10 s.
 */
const terminalOf = (stream: SseClient, jobId: string) =>
  waitWhileMoving(stream, isTerminalOf(jobId), isEventOf(jobId));
const isProgressOf =
  (jobId: string, above = 0) =>
  (e: EventSourceMessage) => {
    if (e.event !== undefined) return false;
    const data = JSON.parse(e.data) as JobEvent;
    return (
      data.jobId === jobId && data.type === "generation_progress" && (data.progress ?? 0) > above
    );
  };

async function call(svc: RunningService, method: string, path: string, token?: string) {
  const response = await fetch(`${svc.url}${path}`, {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return response;
}

async function openUserStream(
  svc: RunningService,
  user: { id: string },
  token: string,
  cursor?: string,
) {
  const stream = await openHttp1(`${svc.url}/api/events?channel=user:${user.id}`, {
    authorization: `Bearer ${token}`,
    ...(cursor ? { "last-event-id": cursor } : {}),
  });
  assert.equal(stream.status, 200);
  return stream;
}

describe("jobs (embedded mode)", () => {
  /** Small, fast jobs, every frame reported. */
  let svc: RunningService;
  /** Jobs that render for seconds, one at a time. */
  let slow: RunningService;
  before(async () => {
    svc = await startService({
      JOBS_FRAMES: "16",
      JOBS_FRAME_SIZE: "96",
      JOBS_PROGRESS_INTERVAL_MS: "0",
      JOBS_CONCURRENCY: "2",
    });
    slow = await startService({
      JOBS_FRAMES: "300",
      JOBS_FRAME_SIZE: "320",
      JOBS_PROGRESS_INTERVAL_MS: "50",
      JOBS_CONCURRENCY: "1",
    });
  });
  after(() => Promise.all([svc.stop(), slow.stop()]));

  it("progress rises monotonically to 100, then one completion whose URL serves the GIF", async () => {
    const { token, user } = await svc.login("Ada");
    const stream = await openUserStream(svc, user, token);
    const posted = await svc.post("/api/generate/video", token, {
      prompt: "A cat playing piano",
      aspectRatio: "9:16",
    });
    assert.equal(posted.status, 202);
    const { jobId } = posted.body as { jobId: string };
    await terminalOf(stream, jobId);
    const events = jobEvents(stream, jobId);
    const progress = events.filter((e) => e.type === "generation_progress");
    const values = progress.map((e) => e.progress ?? -1);
    assert.ok(values.length >= 3, `several progress events: ${values}`);
    for (let i = 1; i < values.length; i++) {
      assert.ok((values[i] ?? 0) >= (values[i - 1] ?? 0), `monotonic: ${values}`);
    }
    assert.equal(values.at(-1), 100);
    assert.equal(events.at(-1)?.type, "generation_complete");
    assert.equal(events.filter((e) => TERMINAL.has(e.type)).length, 1);
    const result = events.at(-1)?.result;
    assert.ok(result);
    assert.deepEqual(
      { w: result.width, h: result.height, f: result.frames },
      { w: 54, h: 96, f: 16 },
    );

    const media = await call(svc, "GET", result.url, token);
    assert.equal(media.status, 200);
    assert.equal(media.headers.get("content-type"), "image/gif");
    const bytes = new Uint8Array(await media.arrayBuffer());
    assert.equal(new TextDecoder().decode(bytes.subarray(0, 6)), "GIF89a");
    assert.equal(bytes.byteLength, result.bytes);
    assert.equal(Number(media.headers.get("content-length")), result.bytes);
    assert.deepEqual(inspectGif(bytes), {
      version: "GIF89a",
      width: result.width,
      height: result.height,
      frames: result.frames,
      complete: true,
    });

    const status = await call(svc, "GET", `/api/jobs/${jobId}`, token);
    assert.equal(status.status, 200);
    const view = (await status.json()) as Record<string, unknown>;
    assert.equal(view.status, "completed");
    assert.equal(view.progress, 100);
    assert.deepEqual(view.result, result);
    stream.close();
  });

  it("validates input: 400s, 401 without a token, 403 for a service token", async () => {
    const { token } = await svc.login("Val");
    const bad = [
      {},
      { prompt: "" },
      { prompt: "   " },
      { prompt: "x".repeat(501) },
      { prompt: "bell\u0007" },
      { prompt: "ok", aspectRatio: "2:1" },
      { prompt: "ok", aspectRatio: 16 },
      { prompt: "ok", extra: true },
    ];
    for (const body of bad) {
      const res = await svc.post("/api/generate/video", token, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal((res.body as { code: string }).code, "RT_ERR_BAD_REQUEST");
    }
    const noToken = await svc.post("/api/generate/video", null, { prompt: "x" });
    assert.equal(noToken.status, 401);
    const service = await svc.service.auth.issueServiceToken({ service: "b", scopes: ["publish"] });
    const asService = await svc.post("/api/generate/video", service, { prompt: "x" });
    assert.equal(asService.status, 403);
  });

  it("limits queued+running jobs per user (429 + Retry-After); others' jobs are 404", async () => {
    const ada = await slow.login("Busy");
    const bob = await slow.login("Other");
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await slow.post("/api/generate/video", ada.token, { prompt: `slow ${i}` });
      assert.equal(res.status, 202);
      ids.push((res.body as { jobId: string }).jobId);
    }
    // One renders for seconds, the other waits for the only thread: both count.
    const third = await slow.post("/api/generate/video", ada.token, { prompt: "one too many" });
    assert.equal(third.status, 429);
    assert.equal((third.body as { code: string }).code, "RT_ERR_RATE_LIMITED");
    const retry = await slow.service.app.inject({
      method: "POST",
      url: "/api/generate/video",
      headers: { authorization: `Bearer ${ada.token}`, "content-type": "application/json" },
      payload: { prompt: "again" },
    });
    assert.equal(retry.statusCode, 429);
    assert.match(String(retry.headers["retry-after"]), /^[1-9][0-9]*$/);

    const id = ids[0] ?? "";
    for (const [method, path] of [
      ["GET", `/api/jobs/${id}`],
      ["DELETE", `/api/jobs/${id}`],
      ["GET", `/api/media/${id}`],
      ["GET", "/api/jobs/not-a-job-id"],
      ["GET", "/api/jobs/j_AAAAAAAAAAAAAAAAAAAA"],
    ] as const) {
      const res = await call(slow, method, path, bob.token);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(((await res.json()) as { code: string }).code, "RT_ERR_NOT_FOUND");
    }
    assert.equal((await call(slow, "GET", `/api/jobs/${id}`)).status, 401);
    // Bob's attempt to cancel did nothing; Ada's own cancel frees her slots.
    assert.equal((await slow.service.jobs.get(ada.user.id, id))?.status, "running");
    for (const jobId of ids) await call(slow, "DELETE", `/api/jobs/${jobId}`, ada.token);
    const after = await slow.post("/api/generate/video", ada.token, { prompt: "now fine" });
    assert.equal(after.status, 202);
    await call(slow, "DELETE", `/api/jobs/${(after.body as { jobId: string }).jobId}`, ada.token);
  });

  it("cancels a running job: one generation_cancelled, status cancelled, the thread stops", async () => {
    const pool = (slow.service.jobs as EmbeddedJobSystem).pool;
    const { token, user } = await slow.login("Cancel");
    const stream = await openUserStream(slow, user, token);
    const running = await slow.post("/api/generate/video", token, { prompt: "long" });
    const queued = await slow.post("/api/generate/video", token, { prompt: "waits" });
    const runningId = (running.body as { jobId: string }).jobId;
    const queuedId = (queued.body as { jobId: string }).jobId;
    await stream.waitFor(isProgressOf(runningId), 20_000);
    const exitsBefore = pool.exits;

    // The queued one first: it never starts.
    const q = await call(slow, "DELETE", `/api/jobs/${queuedId}`, token);
    assert.equal(((await q.json()) as { status: string }).status, "cancelled");
    const res = await call(slow, "DELETE", `/api/jobs/${runningId}`, token);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, "cancelled");
    const cancelled = await stream.waitFor(isTerminalOf(runningId), 5_000);
    assert.equal(JSON.parse(cancelled.data).type, "generation_cancelled");
    await stream.waitFor(isTerminalOf(queuedId), 5_000);

    assert.equal(pool.busy, 0, "no render runs");
    // The render thread is terminated, not left to finish in the background.
    await pool.waitForExits(exitsBefore + 1);
    const again = await call(slow, "DELETE", `/api/jobs/${runningId}`, token);
    assert.equal(((await again.json()) as { status: string }).status, "cancelled");
    const view = (await (await call(slow, "GET", `/api/jobs/${runningId}`, token)).json()) as {
      status: string;
      progress: number;
    };
    assert.equal(view.status, "cancelled");
    assert.ok(view.progress < 100);
    assert.equal(jobEvents(stream, runningId).filter((e) => TERMINAL.has(e.type)).length, 1);
    assert.deepEqual(
      jobEvents(stream, queuedId).map((e) => e.type),
      ["generation_cancelled"],
    );
    assert.equal((await call(slow, "GET", `/api/media/${runningId}`, token)).status, 404);
    stream.close();
  });

  it("a client that reconnects mid-job with its cursor gets what it missed, terminal once", async () => {
    const { token, user } = await slow.login("Resume");
    const observer = await openUserStream(slow, user, token);
    const first = await openUserStream(slow, user, token);
    const posted = await slow.post("/api/generate/video", token, { prompt: "resume me" });
    const { jobId } = posted.body as { jobId: string };
    await first.waitFor(isProgressOf(jobId), 20_000);
    first.close();
    const cursor = first.lastEventId();
    const seenFirst = jobEvents(first, jobId);
    const lastSeen = seenFirst.at(-1)?.progress ?? 0;
    // Reconnect once the job moved on without us.
    await observer.waitFor(isProgressOf(jobId, lastSeen), 20_000);
    const midway = await slow.service.jobs.get(user.id, jobId);
    assert.equal(midway?.status, "running", "the reconnect happens mid-job");
    const second = await openUserStream(slow, user, token, cursor);
    await terminalOf(second, jobId);
    await terminalOf(observer, jobId);

    const all = jobEvents(observer, jobId);
    const resumed = jobEvents(second, jobId);
    assert.ok(
      resumed.some((e) => e.type === "generation_progress"),
      "missed progress replayed",
    );
    assert.deepEqual([...seenFirst, ...resumed], all, "nothing missed, nothing twice");
    assert.equal(resumed.filter((e) => TERMINAL.has(e.type)).length, 1);
    observer.close();
    second.close();
  });
});
