/**
 * The one catalogue of HTTP errors realtime answers with — the service, the Fastify plugin
 * (`@realtime/fastify`, whose `error-handler.ts` turns every failure into a JSON
 * `{ code, message }` body) and the `node:http` handler alike — and how the hub's refusals map
 * onto it.
 *
 * Codes are stable API: clients switch on `code`, never on `message`. Every entry is listed in
 * `docs/errors.md`; the service's `errors.test.ts` fails when the two drift apart.
 */
import { ChannelCapacityError } from "./broker.ts";
import { HubError } from "./hub-error.ts";

/** What a route asks the hub for; the message of a broker failure says which failed. */
export type HubAction = "publish" | "open";

/** One catalogue entry: stable code, HTTP status and the default message. */
export interface ErrorEntry {
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

export const Errors = {
  BAD_REQUEST: {
    code: "RT_ERR_BAD_REQUEST",
    status: 400,
    message: "The request is malformed",
  },
  BAD_CHANNEL: {
    code: "RT_ERR_BAD_CHANNEL",
    status: 400,
    message: "Invalid channel name",
  },
  BAD_IDEMPOTENCY_KEY: {
    code: "RT_ERR_BAD_IDEMPOTENCY_KEY",
    status: 400,
    message: "The Idempotency-Key header must be 1-128 visible ASCII characters",
  },
  TOO_MANY_CHANNELS: {
    code: "RT_ERR_TOO_MANY_CHANNELS",
    status: 400,
    message: "Too many channels for one stream",
  },
  UNAUTHORIZED: {
    code: "RT_ERR_UNAUTHORIZED",
    status: 401,
    message: "Authentication required",
  },
  TOKEN_EXPIRED: {
    code: "RT_ERR_TOKEN_EXPIRED",
    status: 401,
    message: "The token has expired",
  },
  FORBIDDEN: {
    code: "RT_ERR_FORBIDDEN",
    status: 403,
    message: "Not allowed",
  },
  CHANNEL_FORBIDDEN: {
    code: "RT_ERR_CHANNEL_FORBIDDEN",
    status: 403,
    message: "This channel is not allowed for you",
  },
  DEV_LOGIN_DISABLED: {
    code: "RT_ERR_DEV_LOGIN_DISABLED",
    status: 403,
    message: "Dev login is disabled on this server",
  },
  NOT_FOUND: {
    code: "RT_ERR_NOT_FOUND",
    status: 404,
    message: "Not found",
  },
  METHOD_NOT_ALLOWED: {
    code: "RT_ERR_METHOD_NOT_ALLOWED",
    status: 405,
    message: "Method not allowed",
  },
  REQUEST_TIMEOUT: {
    code: "RT_ERR_REQUEST_TIMEOUT",
    status: 408,
    message: "The request did not arrive in time",
  },
  PAYLOAD_TOO_LARGE: {
    code: "RT_ERR_PAYLOAD_TOO_LARGE",
    status: 413,
    message: "Request body is too large",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    code: "RT_ERR_UNSUPPORTED_MEDIA_TYPE",
    status: 415,
    message: "Unsupported content type; send application/json",
  },
  IDEMPOTENCY_KEY_REUSED: {
    code: "RT_ERR_IDEMPOTENCY_KEY_REUSED",
    status: 422,
    message: "This Idempotency-Key was already used for a different event",
  },
  RATE_LIMITED: {
    code: "RT_ERR_RATE_LIMITED",
    status: 429,
    message: "Too many requests",
  },
  TOO_MANY_CONNECTIONS: {
    code: "RT_ERR_TOO_MANY_CONNECTIONS",
    status: 429,
    message: "Too many open streams for this user or address",
  },
  HEADERS_TOO_LARGE: {
    code: "RT_ERR_HEADERS_TOO_LARGE",
    status: 431,
    message: "The request's headers are too large",
  },
  INTERNAL: {
    code: "RT_ERR_INTERNAL",
    status: 500,
    message: "Internal server error",
  },
  BROKER_UNAVAILABLE: {
    code: "RT_ERR_BROKER_UNAVAILABLE",
    status: 503,
    message: "The broker is unavailable; try again",
  },
  AUTHZ_UNAVAILABLE: {
    code: "RT_ERR_AUTHZ_UNAVAILABLE",
    status: 503,
    message: "Access could not be checked: the authorization backend did not answer; try again",
  },
  AT_CAPACITY: {
    code: "RT_ERR_AT_CAPACITY",
    status: 503,
    message: "The server is at capacity; try again later",
  },
  SHUTTING_DOWN: {
    code: "RT_ERR_SHUTTING_DOWN",
    status: 503,
    message: "The server is shutting down; try again",
  },
} as const satisfies Record<string, ErrorEntry>;

/** Every code in the catalogue. */
export type ErrorCode = (typeof Errors)[keyof typeof Errors]["code"];

/** An error the handler sends as-is: its status, its code, its message. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Response headers to set, such as `Retry-After` (seconds) for 429 and 503. */
  readonly headers?: Readonly<Record<string, string>>;

  constructor(
    entry: (typeof Errors)[keyof typeof Errors],
    message?: string,
    headers?: Readonly<Record<string, string>>,
  ) {
    super(message ?? entry.message);
    this.name = "AppError";
    this.code = entry.code;
    this.status = entry.status;
    if (headers) this.headers = headers;
  }
}

/**
 * An {@link AppError} for a catalogue entry. `message` replaces the default one; it is sent to
 * the client, so it must never contain secrets (tokens, internal errors).
 */
export function appError(
  entry: (typeof Errors)[keyof typeof Errors],
  message?: string,
  headers?: Readonly<Record<string, string>>,
): AppError {
  return new AppError(entry, message, headers);
}

/** The JSON body of an error response. */
export function errorBody(err: { readonly code: string; readonly message: string }): {
  code: string;
  message: string;
} {
  return { code: err.code, message: err.message };
}

/** What a broker failure says, per action; a route that declares none gets the default. */
const UNAVAILABLE: Readonly<Record<HubAction, string>> = {
  publish: "The event could not be published: the broker is unavailable; try again",
  open: "The stream could not be opened: the broker is unavailable; try again",
};

/**
 * The {@link AppError} for a hub refusal (503, 413 or 422), or null when `error` is no
 * {@link HubError}. The one place the hub's codes meet the catalogue.
 */
export function fromHubError(error: unknown, action?: HubAction): AppError | null {
  if (!(error instanceof HubError)) return null;
  switch (error.code) {
    case "at_capacity":
      return appError(
        Errors.AT_CAPACITY,
        error.cause instanceof ChannelCapacityError
          ? "The server holds its maximum number of channels, all in use; try again later"
          : undefined,
        { "Retry-After": retryAfterSeconds() },
      );
    case "shutting_down":
      return appError(Errors.SHUTTING_DOWN, undefined, { "Retry-After": retryAfterSeconds() });
    case "too_large":
      return appError(Errors.PAYLOAD_TOO_LARGE, error.message);
    case "idempotency_conflict":
      return appError(Errors.IDEMPOTENCY_KEY_REUSED);
    default:
      return appError(
        Errors.BROKER_UNAVAILABLE,
        action === undefined ? undefined : UNAVAILABLE[action],
        { "Retry-After": "1" },
      );
  }
}

/** 1–10 s, random, so refused clients do not all come back at once. */
function retryAfterSeconds(): string {
  return String(1 + Math.floor(Math.random() * 10));
}

/**
 * The catalogue code `error` is answered with when it is a refusal — an {@link AppError} or a
 * hub refusal — else null (an unexpected error, answered 500). For counting refusals.
 */
export function refusalCode(error: unknown): ErrorCode | null {
  if (error instanceof AppError) return error.code;
  return fromHubError(error)?.code ?? null;
}
