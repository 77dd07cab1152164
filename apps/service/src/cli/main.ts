/**
 * The `realtime` operator CLI (`npx realtime <command>`, launched by `bin/realtime.mjs`):
 * `token`, `publish`, `presence`, `check-config`, `--version`, `--help`.
 *
 * Every command reads the environment with the service's own config loader (`../config.ts`),
 * so it agrees with the pods it talks to. A failure is one line on stderr and a non-zero exit:
 * 64 for a usage error, 78 for an invalid environment (1 for `check-config`), 1 otherwise.
 */
import { readFileSync } from "node:fs";
import { checkConfigCommand } from "./check-config.ts";
import { CliError, type Command, EX_USAGE } from "./command.ts";
import { presenceCommand } from "./presence.ts";
import { publishCommand } from "./publish.ts";
import { tokenCommand } from "./token.ts";

const COMMANDS: Readonly<Record<string, Command>> = {
  token: tokenCommand,
  publish: publishCommand,
  presence: presenceCommand,
  "check-config": checkConfigCommand,
};

function version(): string {
  const root = new URL("../../../../package.json", import.meta.url);
  return (JSON.parse(readFileSync(root, "utf8")) as { version: string }).version;
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`,
  );
  return `usage: realtime <command> [options]

Operator tools for a realtime deployment. They read the same environment variables as the
service (JWT_SECRET, REDIS_URL, …; see the README's Configuration).

commands:
${lines.join("\n")}

options:
  -h, --help     this help; \`realtime <command> --help\` for a command's
  -v, --version  the version
`;
}

async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help") {
    process.stdout.write(help());
    return 0;
  }
  if (first === "-v" || first === "--version") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (first === "help") {
    const command = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    if (rest[0] !== undefined && !command) throw unknownCommand(rest[0]);
    process.stdout.write(command ? command.help : help());
    return 0;
  }
  const command = COMMANDS[first];
  if (!command) throw unknownCommand(first);
  if (rest.includes("-h") || rest.includes("--help")) {
    process.stdout.write(command.help);
    return 0;
  }
  return command.run(rest);
}

function unknownCommand(name: string): CliError {
  const hint = name.startsWith("-") ? "unknown option" : "unknown command";
  return new CliError(
    `${hint} ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(", ")} (see --help)`,
    EX_USAGE,
  );
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  const { message, exitCode } = CliError.from(error);
  process.stderr.write(`realtime: ${message}\n`);
  process.exitCode = exitCode;
}
