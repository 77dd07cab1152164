/**
 * Fastify's per-request logger (`request.log`), made only when something logs. Fastify builds
 * a pino child with the request's id (`reqId`) for every request; in production (`warn`) a
 * publish or a chat message never logs, yet each paid for the child (an object with its own
 * serialised bindings) and the garbage it leaves. This factory gives each request a small
 * stand-in instead: a call at a level the log records builds the child then, with the same
 * bindings, and logs through it — so every line a request writes still carries its `reqId`
 * (`X-Request-Id`, see request-id.ts) — and a call at a level it does not record is dropped
 * without building anything.
 *
 * A route with a log level or serializers of its own, or a logger that is not pino (no
 * `isLevelEnabled`), gets Fastify's own child at once, as before.
 */
import type { FastifyBaseLogger, FastifyInstance, FastifyServerOptions } from "fastify";

type Bindings = Record<string, unknown>;
type ChildOptions = Parameters<FastifyBaseLogger["child"]>[1];
type LogArgs = Parameters<FastifyBaseLogger["info"]>;
type Level = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

interface PinoLike extends FastifyBaseLogger {
  isLevelEnabled(level: string): boolean;
}

function isPinoLike(logger: FastifyBaseLogger): logger is PinoLike {
  return typeof (logger as Partial<PinoLike>).isLevelEnabled === "function";
}

/** `request.log`, until something logs: then the child Fastify would have made. */
export class RequestLogger {
  readonly #parent: PinoLike;
  readonly #bindings: Bindings;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: PinoLike, bindings: Bindings) {
    this.#parent = parent;
    this.#bindings = bindings;
  }

  /** Whether the child was built (something logged, or asked for it). For tests. */
  get built(): boolean {
    return this.#child !== undefined;
  }

  #real(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings);
    return this.#child;
  }

  #log(level: Level, args: LogArgs): void {
    if (this.#child === undefined && !this.#parent.isLevelEnabled(level)) return;
    (this.#real()[level] as (...a: LogArgs) => void)(...args);
  }

  get level(): string {
    return this.#child?.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    const logger = this.#child ?? this.#parent;
    return (logger as PinoLike).isLevelEnabled(level);
  }

  /** Bindings are added to the request's own, as pino's child of a child does. */
  child(bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options);
  }

  fatal(...args: LogArgs): void {
    this.#log("fatal", args);
  }
  error(...args: LogArgs): void {
    this.#log("error", args);
  }
  warn(...args: LogArgs): void {
    this.#log("warn", args);
  }
  info(...args: LogArgs): void {
    this.#log("info", args);
  }
  debug(...args: LogArgs): void {
    this.#log("debug", args);
  }
  trace(...args: LogArgs): void {
    this.#log("trace", args);
  }
  silent(): void {}
}

/** Fastify's `childLoggerFactory`: a {@link RequestLogger} where it can stand in. */
export const requestLoggerFactory: NonNullable<FastifyServerOptions["childLoggerFactory"]> =
  function (
    this: FastifyInstance,
    logger: FastifyBaseLogger,
    bindings: Bindings,
    options: ChildOptions,
  ): FastifyBaseLogger {
    const own = options as { level?: unknown; serializers?: unknown } | undefined;
    if (own?.level !== undefined || own?.serializers !== undefined || !isPinoLike(logger)) {
      return logger.child(bindings, options);
    }
    return new RequestLogger(logger, bindings) as unknown as FastifyBaseLogger;
  };
