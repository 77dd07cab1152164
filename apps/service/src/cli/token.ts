/**
 * `realtime token`: mints a service token (for `POST /api/publish`) or a user token from the
 * deployment's `JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE` — what `npm run token` runs.
 */
import { parseArgs } from "node:util";
import { type Auth, createAuth } from "../auth.ts";
import type { Config } from "../config.ts";
import { CliError, type Command, EX_CONFIG, EX_USAGE, serviceConfig } from "./command.ts";

const HELP = `usage: realtime token <service> [scope ...]        a service token (default scope: publish)
       realtime token --user <id> [--name <name>]    a user token

Signs with JWT_SECRET (and JWT_ISSUER, JWT_AUDIENCE) as the pods do, so the token works on
every pod; JWT_SECRET must be set. Prints the token on stdout.

options:
  --user <id>           a user token for this user id instead of a service token
  --name <name>         the user's display name (default: the id)
  --ttl <seconds>       lifetime of a service token (default TOKEN_TTL_SECONDS); a user
                        token always lives TOKEN_TTL_SECONDS
  --subscribe <pattern> grant: channels the token may subscribe to (repeatable; \`*\` ends a prefix)
  --publish <pattern>   grant: channels the token may publish to (repeatable)
`;

export const tokenCommand: Command = {
  summary: "mint a service token (or a user token with --user) from JWT_SECRET",
  help: HELP,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        user: { type: "string" },
        name: { type: "string" },
        ttl: { type: "string" },
        subscribe: { type: "string", multiple: true },
        publish: { type: "string", multiple: true },
      },
      allowPositionals: true,
    });
    const grant =
      values.subscribe || values.publish
        ? { subscribe: values.subscribe ?? [], publish: values.publish ?? [] }
        : undefined;
    const auth = signer(serviceConfig());
    let token: string;
    if (values.user !== undefined) {
      if (positionals.length > 0) {
        throw new CliError("a user token takes no service name or scopes", EX_USAGE);
      }
      if (values.ttl !== undefined) {
        throw new CliError("--ttl applies to service tokens only", EX_USAGE);
      }
      token = await auth.issueUserToken({
        id: values.user,
        name: values.name ?? values.user,
        ...(grant ? { grant } : {}),
      });
    } else {
      const [service, ...scopes] = positionals;
      if (service === undefined) {
        throw new CliError(
          "name the service (realtime token <service> [scope ...]) or --user <id>",
          EX_USAGE,
        );
      }
      token = await auth.issueServiceToken({
        service,
        scopes: scopes.length > 0 ? scopes : ["publish"],
        ...(values.ttl !== undefined ? { ttlSeconds: seconds(values.ttl) } : {}),
        ...(grant ? { grant } : {}),
      });
    }
    process.stdout.write(`${token}\n`);
    return 0;
  },
};

/** The pods' token signer; refuses a generated key, whose tokens no pod would accept. */
export function signer(config: Config): Auth {
  if (config.auth.secretGenerated) {
    throw new CliError(
      "JWT_SECRET is not set: a token signed with a random key is useless to the pods; set it first",
      EX_CONFIG,
    );
  }
  return createAuth(config.auth);
}

function seconds(value: string): number {
  const n = /^[0-9]{1,9}$/.test(value) ? Number(value) : 0;
  if (n < 1)
    throw new CliError(
      `--ttl must be a whole number of seconds, got ${JSON.stringify(value)}`,
      EX_USAGE,
    );
  return n;
}
