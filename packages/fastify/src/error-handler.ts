/**
 * The Fastify handlers that turn every failure into a JSON `{ code, message }` body from the
 * catalogue (`http-errors.ts` in `@realtime/server`): refusals as they are, hub refusals mapped once (`fromHubError`),
 * validation and framework errors described, anything else a 500 whose cause is only logged.
 */

import {
  AppError,
  type ErrorEntry,
  Errors,
  errorBody,
  fromHubError,
  type HubAction,
  HubError,
} from "@realtime/server";
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchemaValidationError,
  RawServerBase,
} from "fastify";

declare module "fastify" {
  interface FastifyContextConfig {
    /**
     * What this route asks the hub for (`config: { hubAction }`): a `HubError` it lets through
     * is answered from the catalogue, its broker failure naming the action.
     */
    hubAction?: HubAction;
  }
}

/** Fastify errors that carry a status of their own and map to a catalogue entry. */
const FASTIFY_CODES: Readonly<Record<string, ErrorEntry>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: Errors.PAYLOAD_TOO_LARGE,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: Errors.UNSUPPORTED_MEDIA_TYPE,
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    ...Errors.BAD_REQUEST,
    message: "The body is empty but the content type is application/json",
  },
  FST_ERR_CTP_INVALID_JSON_BODY: { ...Errors.BAD_REQUEST, message: "The body is not valid JSON" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    ...Errors.BAD_REQUEST,
    message: "The body does not match its Content-Length",
  },
};

/**
 * Installs an error handler and a not-found handler on `app` so that every 4xx and 5xx body
 * is JSON `{ code, message }`. Call it on the root instance before registering routes.
 *
 * Validation only rejects unknown fields if the instance's Ajv does not strip them: create the
 * instance with {@link AJV_OPTIONS}.
 */
export function registerErrorHandling<S extends RawServerBase>(app: FastifyInstance<S>): void {
  app.setErrorHandler(answerError);

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?", 1)[0] ?? "/";
    const allowed = allowedMethods(app, path);
    if (allowed.length > 0) {
      const message = `${request.method} is not allowed here; use ${allowed.join(", ")}`;
      sendError(reply, { ...Errors.METHOD_NOT_ALLOWED, message }, { Allow: allowed.join(", ") });
      return;
    }
    sendError(reply, Errors.NOT_FOUND);
  });
}

/**
 * The error handler itself (`app.setErrorHandler(answerError)`): the plugin's routes are
 * answered by it in the plugin's own scope, whatever handler the host app has.
 */
export function answerError(
  thrown: unknown,
  request: Pick<FastifyRequest, "routeOptions" | "log">,
  reply: FastifyReply | ErrorReply,
): void {
  // A hub refusal is answered, and logged, as the catalogue error it maps to.
  const error = fromHubError(thrown, request.routeOptions.config?.hubAction) ?? thrown;
  const { entry, headers } = classify(error);
  if (entry.status >= 500) {
    // The real error goes to the log only; the client gets the catalogue message.
    request.log.error({ err: error }, "request failed");
  } else {
    request.log.info({ code: entry.code, msg: entry.message }, "request rejected");
  }
  sendError(reply as ErrorReply, entry, headers);
}

/**
 * Whether `error` is realtime's to answer: a catalogue error, a hub refusal, a failed schema
 * validation or a body Fastify could not parse. Anything else (the host's own hooks: its rate
 * limiter's 429, its auth plugin's 401, a bug in its `authenticate`) is the host's.
 */
export function isRealtimeError(error: unknown): boolean {
  if (error instanceof AppError || error instanceof HubError) return true;
  if (typeof error !== "object" || error === null) return false;
  const fields = error as { validation?: unknown; code?: unknown };
  return (
    Array.isArray(fields.validation) ||
    (typeof fields.code === "string" && fields.code in FASTIFY_CODES)
  );
}

/**
 * The plugin's routes' error handler: realtime's errors answered from the catalogue, anything
 * else handed to `host` — the error handler the host app had there — so its errors keep its
 * answers, its reporting and its logging.
 */
export function scopedErrorHandler(
  host: FastifyInstance["errorHandler"],
): (this: FastifyInstance, error: unknown, request: FastifyRequest, reply: FastifyReply) => void {
  return function handle(this: FastifyInstance, error, request, reply) {
    if (isRealtimeError(error)) answerError(error, request, reply);
    else host.call(this, error, request, reply);
  };
}

/**
 * Fastify's `frameworkErrors` option: the router's own refusals (a URL that does not decode, a
 * path parameter over `maxParamLength`) answered from the catalogue too, instead of Fastify's
 * default body, which echoes the path back.
 */
export function frameworkErrors(
  error: { readonly code?: string },
  _request: unknown,
  reply: unknown,
): void {
  const message =
    error.code === "FST_ERR_MAX_PARAM_LENGTH"
      ? "A path segment is too long"
      : error.code === "FST_ERR_BAD_URL"
        ? "The URL is not valid"
        : null;
  const entry = message === null ? Errors.INTERNAL : { ...Errors.BAD_REQUEST, message };
  sendError(reply as ErrorReply, entry);
}

/**
 * Ajv options for `Fastify({ ajv: AJV_OPTIONS })`, so that invalid input is rejected rather
 * than quietly repaired. Fastify's defaults differ on two points:
 * - `removeAdditional: true` drops undeclared properties, turning `additionalProperties: false`
 *   into "accept and drop"; we want unknown fields refused (400).
 * - `coerceTypes: "array"` turns `42` into `"42"` for a string field; we want wrong types
 *   refused. Query strings and params therefore arrive as strings (or arrays of strings for a
 *   repeated query parameter): declare them so, e.g. `anyOf: [string, array of string]`.
 */
export const AJV_OPTIONS = {
  customOptions: { removeAdditional: false, coerceTypes: false },
} as const;

/** The part of a Fastify reply the handlers use, whatever the server type (http, https, h2). */
interface ErrorReply {
  readonly sent: boolean;
  readonly raw: { readonly headersSent: boolean };
  header(name: string, value: string): unknown;
  code(status: number): unknown;
  type(contentType: string): unknown;
  send(payload: unknown): unknown;
}

function sendError(
  reply: ErrorReply,
  entry: ErrorEntry,
  headers?: Readonly<Record<string, string>>,
): void {
  // A stream that already sent its headers (SSE) cannot turn into an error response.
  if (reply.sent || reply.raw.headersSent) return;
  for (const [name, value] of Object.entries(headers ?? {})) reply.header(name, value);
  reply.code(entry.status);
  reply.type("application/json; charset=utf-8");
  reply.send(errorBody(entry));
}

function classify(error: unknown): {
  entry: ErrorEntry;
  headers?: Readonly<Record<string, string>> | undefined;
} {
  if (error instanceof AppError) {
    return {
      entry: { code: error.code, status: error.status, message: error.message },
      headers: error.headers,
    };
  }
  if (typeof error !== "object" || error === null) return { entry: Errors.INTERNAL };
  const fields = error as {
    code?: unknown;
    statusCode?: unknown;
    validation?: unknown;
    validationContext?: unknown;
  };
  if (Array.isArray(fields.validation)) {
    const context =
      typeof fields.validationContext === "string" ? fields.validationContext : "body";
    const first = fields.validation[0] as FastifySchemaValidationError | undefined;
    return { entry: { ...Errors.BAD_REQUEST, message: describeValidation(context, first) } };
  }
  if (typeof fields.code === "string") {
    const mapped = FASTIFY_CODES[fields.code];
    if (mapped) return { entry: mapped };
  }
  const status = fields.statusCode;
  if (typeof status === "number" && Number.isInteger(status) && status >= 400 && status < 500) {
    // A client error raised by Fastify or a plugin: keep its status, but not its message,
    // which was not written for clients and may reveal internals.
    return { entry: { ...Errors.BAD_REQUEST, status } };
  }
  return { entry: Errors.INTERNAL };
}

/** "body.name must match pattern …", naming the field rather than only the location. */
function describeValidation(
  context: string,
  error: FastifySchemaValidationError | undefined,
): string {
  if (!error) return `${context} is invalid`;
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((segment) => segment.replace(/~1/g, "/").replace(/~0/g, "~"))
    .join(".");
  const where = path ? `${context}.${path}` : context;
  const params = error.params;
  if (error.keyword === "additionalProperties" && typeof params.additionalProperty === "string") {
    return `${where} has unknown field "${clip(params.additionalProperty)}"`;
  }
  if (error.keyword === "required" && typeof params.missingProperty === "string") {
    return `${where} is missing required field "${clip(params.missingProperty)}"`;
  }
  return `${where} ${error.message ?? "is invalid"}`;
}

/** Echoes a client-chosen field name without control characters or unbounded length. */
function clip(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  const safe = name.replace(/[\u0000-\u001f\u007f-\u009f"]/g, "?");
  return safe.length > 64 ? `${safe.slice(0, 64)}…` : safe;
}

/**
 * Not OPTIONS: with CORS enabled, `@fastify/cors` answers preflights on a wildcard OPTIONS
 * route, which would turn every unknown path into "405, use OPTIONS".
 */
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;

/** Methods with a route at `path`; empty when the path itself is unknown. */
function allowedMethods<S extends RawServerBase>(app: FastifyInstance<S>, path: string): string[] {
  return METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
}
