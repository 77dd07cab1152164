/**
 * `realtime publish <channel> <json-event>`: puts one event on a channel.
 *
 * With Redis configured (`REDIS_URL` or `REDIS_CLUSTER_NODES`), straight onto the Redis path
 * with `createRedisPublisher` — as a backend worker would: the event gets its position, lands
 * in history and reaches every pod, and no pod needs to be reachable. Without Redis there is no
 * shared broker to reach, so it goes through a pod's `POST /api/publish` (`--url`) with a
 * service token (`--token`, `REALTIME_TOKEN`, or one minted from `JWT_SECRET`). `--via` forces
 * either path.
 */

import { parseArgs } from "node:util";
import { type ChannelName, parseChannel } from "@realtime/protocol";
import type { EventInput } from "@realtime/server";
import { redisBrokerOptions } from "../broker-options.ts";
import type { Config } from "../config.ts";
import { CliError, type Command, EX_USAGE, serviceConfig } from "./command.ts";
import { call, serviceUrl } from "./http.ts";
import { signer } from "./token.ts";

const HELP = `usage: realtime publish <channel> <json-event> [options]

Publishes one event, e.g.  realtime publish channel:general '{"type":"notice","text":"hi"}'

With REDIS_URL (or REDIS_CLUSTER_NODES) set, the event goes straight onto the Redis path, as
the pods' own publishes do (REDIS_PREFIX must match the pods'). Otherwise it is POSTed to the
service's /api/publish with a service token. Prints {"channel","offset",…,"via"} as JSON.

options:
  --via <redis|http>        force a path (default: redis when Redis is configured, else http)
  --idempotency-key <key>   a repeat with the same key within IDEMPOTENCY_WINDOW_MS publishes nothing
  --url <url>               the service, for http (default REALTIME_URL, else http://127.0.0.1:$PORT)
  --token <token>           a service token with the publish scope, for http (default
                            REALTIME_TOKEN, else one minted from JWT_SECRET for 60 s)
`;

export const publishCommand: Command = {
  summary: "publish an event on a channel (Redis path, or POST /api/publish)",
  help: HELP,
  async run(args) {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: {
        via: { type: "string" },
        "idempotency-key": { type: "string" },
        url: { type: "string" },
        token: { type: "string" },
      },
      allowPositionals: true,
    });
    const [channel, json, ...extra] = positionals;
    if (channel === undefined || json === undefined || extra.length > 0) {
      throw new CliError("usage: realtime publish <channel> <json-event> (see --help)", EX_USAGE);
    }
    const parsed = parseChannel(channel);
    if (!parsed.ok) {
      throw new CliError(`invalid channel ${JSON.stringify(channel)}: ${parsed.reason}`, EX_USAGE);
    }
    const event = parseEvent(json);
    const via = values.via ?? (redisConfigured() ? "redis" : "http");
    const key = values["idempotency-key"];
    let result: Record<string, unknown>;
    if (via === "redis") {
      result = await viaRedis(serviceConfig(), parsed.channel.name, event, key);
    } else if (via === "http") {
      result = await viaHttp(channel, event, key, values.url, values.token);
    } else {
      throw new CliError(`--via must be redis or http, got ${JSON.stringify(via)}`, EX_USAGE);
    }
    process.stdout.write(`${JSON.stringify({ ...result, via })}\n`);
    return 0;
  },
};

function redisConfigured(): boolean {
  return Boolean(process.env.REDIS_URL || process.env.REDIS_CLUSTER_NODES);
}

function parseEvent(json: string): Record<string, unknown> {
  let event: unknown;
  try {
    event = JSON.parse(json);
  } catch {
    throw new CliError('the event must be JSON, e.g. \'{"type":"notice"}\'', EX_USAGE);
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    throw new CliError('the event must be a JSON object with a "type"', EX_USAGE);
  }
  return event as Record<string, unknown>;
}

async function viaRedis(
  config: Config,
  channel: ChannelName,
  event: Record<string, unknown>,
  idempotencyKey: string | undefined,
): Promise<Record<string, unknown>> {
  if (config.redis.mode === "embedded") {
    throw new CliError("--via redis needs REDIS_URL or REDIS_CLUSTER_NODES", EX_USAGE);
  }
  const { createRedisPublisher } = await import("@realtime/redis");
  // The pods' settings, so the channel's keys live exactly as long as theirs.
  const publisher = createRedisPublisher(redisBrokerOptions(config));
  try {
    const position = await publisher.publish(
      channel,
      // Checked by the publisher itself (a `type`, the size), as the publish API does.
      event as EventInput,
      idempotencyKey === undefined ? {} : { idempotencyKey },
    );
    return { channel, ...position };
  } finally {
    await publisher.close();
  }
}

async function viaHttp(
  channel: string,
  event: Record<string, unknown>,
  idempotencyKey: string | undefined,
  url: string | undefined,
  token: string | undefined,
): Promise<Record<string, unknown>> {
  let config: Config | undefined;
  const loaded = () => {
    config ??= serviceConfig();
    return config;
  };
  const base = serviceUrl(url, () => loaded().http.port);
  const bearer =
    token ??
    process.env.REALTIME_TOKEN ??
    (await signer(loaded()).issueServiceToken({
      service: "realtime-cli",
      scopes: ["publish"],
      ttlSeconds: 60,
    }));
  const headers: Record<string, string> =
    idempotencyKey === undefined ? {} : { "idempotency-key": idempotencyKey };
  const answer = await call("POST", `${base}/api/publish`, bearer, { channel, event }, headers);
  return answer as Record<string, unknown>;
}
