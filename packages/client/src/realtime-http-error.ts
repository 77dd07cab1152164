/**
 * A request the service refused, with what it said: the HTTP status and the `code` and
 * `message` of its JSON error body (docs/errors.md), the same facts a refused stream reports in
 * its state change (`httpStatus`, `errorCode`, `message`).
 */
export class RealtimeHttpError extends Error {
  /** HTTP status, e.g. 403, 429, 503. */
  readonly status: number;
  /** `code` of the JSON error body (`RT_ERR_…`), when it could be read. */
  readonly code: string | undefined;
  /** `Retry-After` in milliseconds (429, 503), when the service sent it in seconds. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, message: string, code?: string, retryAfterMs?: number) {
    super(message);
    this.name = "RealtimeHttpError";
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }

  /** The error for a response that is not ok; reads its JSON body if it has one. */
  static async from(response: Response): Promise<RealtimeHttpError> {
    const body = (await response.json().catch(() => null)) as {
      code?: unknown;
      message?: unknown;
    } | null;
    const seconds = Number(response.headers.get("retry-after") ?? Number.NaN);
    return new RealtimeHttpError(
      response.status,
      typeof body?.message === "string" ? body.message : `HTTP ${response.status}`,
      typeof body?.code === "string" ? body.code : undefined,
      Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined,
    );
  }
}
