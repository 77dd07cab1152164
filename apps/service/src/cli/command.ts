/** What every CLI command is, what a failed one says (one line), and its exit code. */
import { type Config, ConfigError, loadConfig } from "../config.ts";

/** A subcommand: its one-line summary, its `--help`, and what it does (resolves the exit code). */
export interface Command {
  readonly summary: string;
  readonly help: string;
  run(args: readonly string[]): Promise<number>;
}

/** A usage error: unknown command or option, missing or malformed argument (BSD `EX_USAGE`). */
export const EX_USAGE = 64;
/** The environment is invalid for what was asked (BSD `EX_CONFIG`). */
export const EX_CONFIG = 78;

export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }

  /** Any thrown value as one line and an exit code. */
  static from(error: unknown): CliError {
    if (error instanceof CliError) return error;
    if (error instanceof ConfigError) {
      return new CliError(`invalid configuration: ${error.problems.join("; ")}`, EX_CONFIG);
    }
    // node:util parseArgs: unknown option, missing value, unexpected argument.
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")) {
      return new CliError(oneLine(error), EX_USAGE);
    }
    return new CliError(oneLine(error));
  }
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, "; ");
}

/** The service's configuration from this process' environment, as the pods would read it. */
export function serviceConfig(): Config {
  return loadConfig(process.env);
}
