/**
 * Timeouts as a type: the broker replaces connections that let its checks time out (see
 * `RedisBroker`), and tells a timeout from any other failure by its class, not its text.
 */

/** A wait that ran out of time: one of ours ({@link withTimeout}) or a Redis command's. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** `promise`, or a {@link TimeoutError} naming `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * ioredis rejects a command still unanswered after its `commandTimeout` with a plain `Error`
 * carrying exactly this message (ioredis `Command.js`); it has no class of its own.
 */
const IOREDIS_COMMAND_TIMEOUT = "Command timed out";

/**
 * `error` as a {@link TimeoutError} when it is ioredis' command timeout, else as it is. Used
 * where a command runs with a `commandTimeout` and the broker counts its timeouts.
 */
export function asTimeout(error: unknown): unknown {
  if (error instanceof Error && !(error instanceof TimeoutError)) {
    if (error.message === IOREDIS_COMMAND_TIMEOUT) {
      return new TimeoutError(error.message, { cause: error });
    }
  }
  return error;
}
