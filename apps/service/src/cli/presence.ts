/**
 * `realtime presence <channel>`: who is online in a room, over every pod — the service's
 * `GET /api/channels/:channel/presence`, read with a user token (service tokens do not
 * subscribe, so they may not read presence either).
 */
import { parseArgs } from "node:util";
import { parseChannel } from "@realtime/protocol";
import type { Config } from "../config.ts";
import { CliError, type Command, EX_USAGE, serviceConfig } from "./command.ts";
import { call, serviceUrl } from "./http.ts";
import { signer } from "./token.ts";

const HELP = `usage: realtime presence <channel> [options]

Prints who is online in a channel:<id> room, over every pod: one line per user (id, name,
open streams), or the service's answer as JSON with --json.

options:
  --url <url>      the service (default REALTIME_URL, else http://127.0.0.1:$PORT)
  --token <token>  a user token that may subscribe to the room (default REALTIME_TOKEN, else
                   one minted from JWT_SECRET for the user --as, granted only this room)
  --as <id>        the user id of a minted token (default: operator)
  --json           print the service's answer as is
`;

interface Snapshot {
  channel: string;
  users: { userId: string; userName: string; connections: number }[];
  total: number;
  truncated: boolean;
}

export const presenceCommand: Command = {
  summary: "who is online in a room (GET /api/channels/:channel/presence)",
  help: HELP,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        url: { type: "string" },
        token: { type: "string" },
        as: { type: "string", default: "operator" },
        json: { type: "boolean", default: false },
      },
      allowPositionals: true,
    });
    const [channel, ...extra] = positionals;
    if (channel === undefined || extra.length > 0) {
      throw new CliError("usage: realtime presence <channel> (see --help)", EX_USAGE);
    }
    const parsed = parseChannel(channel);
    if (!parsed.ok) {
      throw new CliError(`invalid channel ${JSON.stringify(channel)}: ${parsed.reason}`, EX_USAGE);
    }
    let config: Config | undefined;
    const loaded = () => {
      config ??= serviceConfig();
      return config;
    };
    const base = serviceUrl(values.url, () => loaded().http.port);
    const token =
      values.token ??
      process.env.REALTIME_TOKEN ??
      (await signer(loaded()).issueUserToken({
        id: values.as,
        name: values.as,
        grant: { subscribe: [channel], publish: [] },
      }));
    const answer = (await call(
      "GET",
      `${base}/api/channels/${encodeURIComponent(channel)}/presence`,
      token,
    )) as Snapshot;
    if (values.json) {
      process.stdout.write(`${JSON.stringify(answer)}\n`);
      return 0;
    }
    const shown = answer.truncated ? ` (${answer.users.length} shown)` : "";
    const lines = [`${answer.channel}: ${answer.total} online${shown}`];
    for (const user of answer.users) {
      lines.push(`  ${user.userId}\t${user.userName}\t${user.connections} stream(s)`);
    }
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  },
};
