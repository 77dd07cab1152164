/**
 * Async jobs: start one with a POST, follow it on the user's SSE channel, ask for its status,
 * cancel it, fetch its result.
 *
 * - `POST /api/generate/video { prompt, aspectRatio? }` → 202 `{ jobId }`; 400 invalid input,
 *   429 `RT_ERR_RATE_LIMITED` + `Retry-After` when the user already has `JOBS_MAX_PER_USER`
 *   jobs queued or running.
 * - `GET /api/jobs/:jobId` → 200 status; `DELETE /api/jobs/:jobId` → 200 status after
 *   cancelling a queued or running job (a finished job is returned unchanged).
 * - `GET /api/media/:jobId` → the GIF.
 *
 * All need a user token; another user's job or media is 404, never 403, so ids leak nothing.
 */

import { NO_QUERY } from "@realtime/fastify";
import {
  ASPECT_RATIOS,
  JOB_ID_PATTERN,
  JobLimitError,
  type JobSystem,
  JobsClosedError,
  toView,
} from "@realtime/jobs";
import { appError, Errors } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { ERROR, json, type RouteDoc } from "../api-docs.ts";
import { requireUser } from "../auth/access.ts";
import type { Auth } from "../auth.ts";
import type { RouteLimit } from "../security/route-options.ts";

export interface JobRouteDeps {
  jobs: JobSystem;
  auth: Auth;
}

/** Longest prompt, in characters. */
export const MAX_PROMPT_LENGTH = 500;
export const DEFAULT_ASPECT_RATIO = "16:9";
/** Seconds a client over its job limit is asked to wait: about one short render. */
const LIMIT_RETRY_AFTER_SECONDS = "5";

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

const bodySchema = {
  type: "object",
  properties: {
    prompt: { type: "string", minLength: 1, maxLength: MAX_PROMPT_LENGTH },
    aspectRatio: { type: "string", minLength: 1, maxLength: 16 },
  },
  required: ["prompt"],
  additionalProperties: false,
} as const;

type Schema = Record<string, unknown>;

const JOB: Schema = {
  type: "object",
  required: [
    "jobId",
    "status",
    "progress",
    "attempt",
    "prompt",
    "aspectRatio",
    "createdAt",
    "updatedAt",
  ],
  properties: {
    jobId: { type: "string" },
    status: { type: "string", enum: ["queued", "running", "completed", "failed", "cancelled"] },
    progress: { type: "integer", minimum: 0, maximum: 100 },
    attempt: { type: "integer" },
    prompt: { type: "string" },
    aspectRatio: { type: "string" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
    result: {
      type: "object",
      required: ["url", "width", "height", "frames", "bytes"],
      properties: {
        url: { type: "string" },
        width: { type: "integer" },
        height: { type: "integer" },
        frames: { type: "integer" },
        bytes: { type: "integer" },
      },
    },
    error: ERROR,
  },
};

const JOB_ID: Schema = {
  type: "object",
  required: ["jobId"],
  properties: { jobId: { type: "string", description: "From `POST /api/generate/video`" } },
};

/** Submissions per user. */
const limit: RouteLimit = { name: "jobs", by: "identity" };

const DOCS = {
  submit: {
    tag: "jobs",
    summary: "Start a video generation job",
    description:
      "Progress and the outcome follow as events on the user's channel `user:<id>` (see docs/channels.md).",
    responses: {
      202: json("The job", {
        type: "object",
        required: ["jobId"],
        properties: { jobId: { type: "string" } },
      }),
      400: "Invalid prompt or aspect ratio",
      401: "No valid token",
      429: "Too many jobs queued or running (`Retry-After`)",
      503: "Shutting down (`Retry-After`)",
    },
  },
  status: {
    tag: "jobs",
    summary: "A job's status",
    params: JOB_ID,
    responses: { 200: json("The job", JOB), 401: "No valid token", 404: "No such job" },
  },
  cancel: {
    tag: "jobs",
    summary: "Cancel a queued or running job",
    params: JOB_ID,
    responses: { 200: json("The job", JOB), 401: "No valid token", 404: "No such job" },
  },
  media: {
    tag: "jobs",
    summary: "A finished job's GIF (owner only)",
    params: JOB_ID,
    responses: {
      200: {
        description: "The GIF",
        content: { "image/gif": { schema: { type: "string", format: "binary" } } },
      },
      401: "No valid token",
      404: "No such media",
    },
  },
} as const satisfies Record<string, RouteDoc>;

export function registerJobRoutes(app: FastifyInstance, deps: JobRouteDeps): void {
  const { jobs, auth } = deps;

  const userOf = async (request: Parameters<Auth["authenticate"]>[0]): Promise<string> => {
    const identity = await auth.authenticate(request);
    return requireUser(identity, "jobs need a user token").userId;
  };

  const jobIdOf = (params: unknown): string => {
    const { jobId } = params as { jobId: string };
    if (!JOB_ID_PATTERN.test(jobId)) throw appError(Errors.NOT_FOUND, "no such job");
    return jobId;
  };

  const schema = { querystring: NO_QUERY };
  const submitSchema = { body: bodySchema, querystring: NO_QUERY };

  const submit = { schema: submitSchema, config: { limit, docs: DOCS.submit } };
  app.post("/api/generate/video", submit, async (request, reply) => {
    const userId = await userOf(request);
    const body = request.body as { prompt: string; aspectRatio?: string };
    const prompt = body.prompt.normalize("NFC").trim();
    if (prompt.length === 0) throw appError(Errors.BAD_REQUEST, "body.prompt is blank");
    if (CONTROL.test(prompt)) {
      throw appError(Errors.BAD_REQUEST, "body.prompt has control characters");
    }
    const aspectRatio = body.aspectRatio ?? DEFAULT_ASPECT_RATIO;
    if (!Object.hasOwn(ASPECT_RATIOS, aspectRatio)) {
      const allowed = Object.keys(ASPECT_RATIOS).join(", ");
      throw appError(Errors.BAD_REQUEST, `body.aspectRatio must be one of ${allowed}`);
    }
    try {
      const record = await jobs.submit(userId, { prompt, aspectRatio });
      reply.header("location", `/api/jobs/${record.jobId}`);
      return reply.code(202).send({ jobId: record.jobId });
    } catch (error) {
      if (error instanceof JobLimitError) {
        throw appError(Errors.RATE_LIMITED, error.message, {
          "Retry-After": LIMIT_RETRY_AFTER_SECONDS,
        });
      }
      if (error instanceof JobsClosedError) {
        throw appError(Errors.SHUTTING_DOWN, undefined, { "Retry-After": "1" });
      }
      throw error;
    }
  });

  app.get("/api/jobs/:jobId", { schema, config: { docs: DOCS.status } }, async (request, reply) => {
    const userId = await userOf(request);
    const record = await jobs.get(userId, jobIdOf(request.params));
    if (!record) throw appError(Errors.NOT_FOUND, "no such job");
    reply.header("cache-control", "no-store");
    return toView(record);
  });

  app.delete(
    "/api/jobs/:jobId",
    { schema, config: { docs: DOCS.cancel } },
    async (request, reply) => {
      const userId = await userOf(request);
      const record = await jobs.cancel(userId, jobIdOf(request.params));
      if (!record) throw appError(Errors.NOT_FOUND, "no such job");
      reply.header("cache-control", "no-store");
      return toView(record);
    },
  );

  app.get("/api/media/:jobId", { schema, config: { docs: DOCS.media } }, async (request, reply) => {
    const userId = await userOf(request);
    const bytes = await jobs.media(userId, jobIdOf(request.params));
    if (!bytes) throw appError(Errors.NOT_FOUND, "no such media");
    reply.header("cache-control", "private, max-age=3600");
    reply.header("x-content-type-options", "nosniff");
    reply.type("image/gif");
    return reply.send(bytes);
  });
}
