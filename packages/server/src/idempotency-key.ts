/**
 * `Idempotency-Key` on the routes that publish (the publish route of `@realtime/fastify`, the
 * service's `POST /api/publish` and `POST /api/chat/messages`):
 * a client that retries after an ambiguous failure (a timeout, a cut connection, a proxy's 502
 * during a deploy) sends the same key again, and a publish that was already accepted is not
 * published twice — the retry gets the first answer, marked `Idempotent-Replayed: true`.
 *
 * Grammar: 1–128 visible ASCII characters (`!` to `~`, RFC 9110 VCHAR): no spaces, no control
 * or non-ASCII characters; a UUID, a ULID or `order-123:attempt` all fit. The header must come
 * once (repeated headers reach Node joined by ", ", which has a space). The key is
 * case-sensitive and opaque; the IETF draft's quoted form (`"abc"`) is a different key from
 * `abc`, so a client keeps one form.
 *
 * Scope: a key counts per channel (the broker keys it by channel) and per publisher: the broker
 * gets a SHA-256 of the publisher (its owner parts, e.g. `["user", id]` or `["service", name]`)
 * and the key, so two users — or two services — never share one, and the client's key never
 * reaches Redis as is.
 */
import { createHash } from "node:crypto";
import { isRequestId, type PublishOptions } from "./broker.ts";
import { appError, Errors } from "./http-errors.ts";

/** The request header (lower case, as Node exposes it). */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
/** The response header of a replay (`true`); absent on a first publish. */
export const REPLAYED_HEADER = "Idempotent-Replayed";
/** 1–128 visible ASCII characters. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;

/**
 * The request's idempotency key: undefined without the header; throws a 400
 * `RT_ERR_BAD_IDEMPOTENCY_KEY` when it is not one.
 */
export function readIdempotencyKey(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): string | undefined {
  const value = headers[IDEMPOTENCY_KEY_HEADER];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !IDEMPOTENCY_KEY_PATTERN.test(value)) {
    throw appError(Errors.BAD_IDEMPOTENCY_KEY);
  }
  return value;
}

/**
 * What the broker stores for `key` sent by `owner` (who publishes, as parts such as
 * `["user", id]`): both hashed together (43 characters).
 */
export function scopedIdempotencyKey(owner: readonly string[], key: string): string {
  // JSON keeps the parts apart: no (owner, key) pair can collide with another by concatenation.
  return createHash("sha256")
    .update(JSON.stringify([...owner, key]))
    .digest("base64url");
}

/** What {@link requestPublishOptions} reads of a request (Fastify's request fits). */
export interface PublishRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The request's id (Fastify's `request.id`: the service's is its `X-Request-Id`). */
  readonly id: string;
}

/**
 * The publish options of a request by `owner`: its `Idempotency-Key` scoped to the owner and
 * remembered for `windowMs` (none without the header), and its id, carried with the event to
 * the pods that deliver it when it is a plain token ({@link isRequestId}; a host's own id
 * scheme may not be). Throws like {@link readIdempotencyKey}.
 */
export function requestPublishOptions(
  owner: readonly string[],
  request: PublishRequest,
  windowMs: number,
): PublishOptions {
  const key = readIdempotencyKey(request.headers);
  const requestId = isRequestId(request.id) ? request.id : undefined;
  if (key === undefined) return { requestId };
  return {
    idempotencyKey: scopedIdempotencyKey(owner, key),
    idempotencyWindowMs: windowMs,
    requestId,
  };
}

/**
 * Route schema for the header, for the OpenAPI document. Not a validation: the type check is
 * always true for a header, and the grammar is checked by {@link readIdempotencyKey} so that a
 * bad key gets its own error code.
 */
export const IDEMPOTENCY_HEADERS_SCHEMA = {
  type: "object",
  properties: {
    [IDEMPOTENCY_KEY_HEADER]: {
      type: "string",
      description:
        "Optional. 1–128 visible ASCII characters (e.g. a UUID). A repeat of the key by the same caller on the same channel within IDEMPOTENCY_WINDOW_MS (default 10 min) publishes nothing and gets the first answer, with `Idempotent-Replayed: true`.",
    },
  },
} as const;
