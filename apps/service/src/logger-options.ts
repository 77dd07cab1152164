/**
 * The service's request logger. JSON lines (what log tooling reads) in production, when stdout
 * is not a terminal, and whenever `pino-pretty` is not installed; `pino-pretty`'s readable
 * lines only on a developer's terminal. `pino-pretty` is a dev dependency, so a production
 * install (`npm ci --omit=dev`) does not have it: the logger must never name it there, or pino
 * would fail to start its transport.
 */
import type { FastifyServerOptions } from "fastify";
import type { Config } from "./config.ts";
import { serializeRequest } from "./log-redaction.ts";

export const PRETTY_TRANSPORT = "pino-pretty";

/** Whether `specifier` resolves from here (as pino's transport will resolve it). */
export function resolvable(specifier: string): boolean {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

export interface LoggerEnvironment {
  /** Whether stdout is a terminal a person reads. */
  readonly isTTY: boolean;
  /** Whether `pino-pretty` can be loaded. */
  readonly prettyAvailable: () => boolean;
}

const PROCESS_ENVIRONMENT: LoggerEnvironment = {
  isTTY: process.stdout.isTTY === true,
  prettyAvailable: () => resolvable(PRETTY_TRANSPORT),
};

export function loggerOptions(
  config: Pick<Config, "isProduction" | "logLevel">,
  environment: LoggerEnvironment = PROCESS_ENVIRONMENT,
): FastifyServerOptions["logger"] {
  const redact = {
    paths: ["req.headers.authorization", "req.headers.cookie", 'res.headers["set-cookie"]'],
    censor: "[redacted]",
  };
  const serializers = { req: serializeRequest };
  const json = { level: config.logLevel, redact, serializers };
  // Checked last: only a development run on a terminal needs to look for pino-pretty.
  if (config.isProduction || !environment.isTTY || !environment.prettyAvailable()) return json;
  return {
    ...json,
    transport: {
      target: PRETTY_TRANSPORT,
      options: { translateTime: "HH:MM:ss.l", ignore: "pid,hostname" },
    },
  };
}
