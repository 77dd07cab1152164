/**
 * "Generate": a prompt and an aspect ratio start a job (`POST /api/generate/video`); its
 * progress bar is driven by the `generation_*` events on the user's own channel; the result
 * (an animated GIF) is shown when it is done. Queued or running jobs can be cancelled.
 */
import { type FormEvent, useState } from "react";
import { ApiError, describeError } from "../api.ts";
import { useServices } from "../context.ts";
import { formatBytes } from "../format.ts";
import { type Job, type JobView, TERMINAL } from "../jobs.ts";

const ASPECT_RATIOS = [
  ["16:9", "16:9 landscape"],
  ["1:1", "1:1 square"],
  ["4:3", "4:3"],
  ["3:4", "3:4"],
  ["9:16", "9:16 portrait"],
] as const;

/** The service's default `JOBS_MAX_PER_USER`: more is refused with 429. */
const MAX_ACTIVE = 2;

export function Generate({ jobs }: { jobs: readonly Job[] }) {
  const { session, store } = useServices();
  const [prompt, setPrompt] = useState("");
  const [aspectRatio, setAspectRatio] = useState("16:9");
  const [pending, setPending] = useState(false);
  const [error, setError] = useState("");
  const active = jobs.filter((job) => !TERMINAL.has(job.status)).length;
  const busy = active >= MAX_ACTIVE;

  async function submit(event: FormEvent) {
    event.preventDefault();
    const text = prompt.trim();
    if (!text) {
      setError("Describe what to generate.");
      return;
    }
    setPending(true);
    setError("");
    try {
      const { jobId } = await session.call<{ jobId: string }>("/api/generate/video", {
        method: "POST",
        body: { prompt: text, aspectRatio },
      });
      store.submitted(jobId, text, aspectRatio);
    } catch (cause) {
      setError(
        cause instanceof ApiError && cause.status === 429
          ? "Two jobs at a time: wait for one to finish, or cancel it."
          : describeError(cause),
      );
    } finally {
      setPending(false);
    }
  }

  return (
    <section className="panel generate" aria-labelledby="generate-title">
      <h2 id="generate-title" className="panel-title">
        Generate
      </h2>
      <form className="generate-form" onSubmit={submit} noValidate>
        <label htmlFor="prompt">Prompt</label>
        <textarea
          id="prompt"
          rows={2}
          maxLength={500}
          placeholder="A paper boat on a stormy sea"
          value={prompt}
          aria-describedby={error ? "generate-error" : undefined}
          onChange={(event) => setPrompt(event.target.value)}
        />
        <div className="generate-row">
          <label htmlFor="aspect" className="generate-aspect">
            <span>Aspect ratio</span>
            <select
              id="aspect"
              value={aspectRatio}
              onChange={(event) => setAspectRatio(event.target.value)}
            >
              {ASPECT_RATIOS.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className="primary" disabled={pending || busy}>
            {pending ? "Starting…" : "Generate"}
          </button>
        </div>
        {error ? (
          <p id="generate-error" className="form-error" role="alert">
            {error}
          </p>
        ) : (
          busy && <p className="hint">Two jobs at a time: the button comes back when one ends.</p>
        )}
      </form>
      {jobs.length > 0 && (
        <ol className="jobs" aria-label="Jobs">
          {jobs.map((job) => (
            <JobCard key={job.jobId} job={job} />
          ))}
        </ol>
      )}
    </section>
  );
}

const STATUS_TEXT: Record<Job["status"], string> = {
  queued: "Queued",
  running: "Rendering",
  completed: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

function JobCard({ job }: { job: Job }) {
  const { session, store } = useServices();
  const [cancelling, setCancelling] = useState(false);
  const title = job.prompt || "Generation";
  const finished = TERMINAL.has(job.status);

  async function cancel() {
    setCancelling(true);
    try {
      store.jobView(await session.call<JobView>(`/api/jobs/${job.jobId}`, { method: "DELETE" }));
    } catch {
      // The job's own events tell how it ended.
    } finally {
      setCancelling(false);
    }
  }

  return (
    <li className="job" data-status={job.status} aria-label={`Job: ${title}`}>
      <div className="job-head">
        <p className="job-prompt">{title}</p>
        {job.aspectRatio && <span className="tag">{job.aspectRatio}</span>}
      </div>
      {job.status !== "cancelled" && job.status !== "failed" && (
        <div className="job-progress">
          <div
            className="bar"
            role="progressbar"
            aria-label={`Progress of ${title}`}
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={job.progress}
          >
            <div className="bar-fill" style={{ width: `${job.progress}%` }} />
          </div>
          <span className="job-percent">{job.progress}%</span>
        </div>
      )}
      <div className="job-foot">
        <p className="job-status">
          <span className="job-state">{STATUS_TEXT[job.status]}</span>
          {job.status === "running" && job.message ? ` · ${job.message}` : ""}
          {job.status === "failed" && job.error ? `: ${job.error.message}` : ""}
        </p>
        {!finished && (
          <button
            type="button"
            className="ghost small"
            onClick={cancel}
            disabled={cancelling}
            aria-label={`Cancel ${title}`}
          >
            {cancelling ? "Cancelling…" : "Cancel"}
          </button>
        )}
      </div>
      {job.status === "completed" && job.result && (
        <figure className="job-result">
          <img
            src={job.result.url}
            width={job.result.width || undefined}
            height={job.result.height || undefined}
            alt={`Generated: ${title}`}
          />
          <figcaption>
            {job.result.width}×{job.result.height} · {job.result.frames} frames ·{" "}
            {formatBytes(job.result.bytes)} ·{" "}
            <a href={job.result.url} target="_blank" rel="noreferrer">
              Open GIF
            </a>
          </figcaption>
        </figure>
      )}
    </li>
  );
}
