/**
 * `realtime check-config`: validates the environment with the service's own loader
 * (`loadConfig`, the one `npm start` uses) and prints what would run, secrets masked. Exit 0
 * when a pod would start with it, 1 when it would refuse (one line per problem on stderr).
 */
import { parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../config.ts";
import type { Command } from "./command.ts";

const HELP = `usage: realtime check-config [--json]

Validates the environment exactly as the service does at start-up and prints what would run:
the mode (embedded, redis, cluster), listeners, auth, limits. Secrets are masked: JWT_SECRET
is shown by length only, a password in REDIS_URL as ****.

Exit 0 when the service would start with this environment; 1 when it would refuse, with one
line per problem on stderr.

options:
  --json   the whole resolved configuration as JSON (secrets masked)
`;

export const checkConfigCommand: Command = {
  summary: "validate the environment as the service does; print what would run",
  help: HELP,
  async run(args) {
    const { values } = parseArgs({
      args: [...args],
      options: { json: { type: "boolean", default: false } },
      allowPositionals: false,
    });
    let config: Config;
    try {
      config = loadConfig(process.env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) {
        process.stderr.write(`realtime check-config: ${problem}\n`);
      }
      return 1;
    }
    const masked = maskedConfig(config);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(masked, null, 2)}\n`);
    } else {
      process.stdout.write(describeConfig(masked));
    }
    return 0;
  },
};

/** What stands in for a secret's value. */
export const MASK = "****";

/** `config` with `JWT_SECRET` replaced by a description and any password in `REDIS_URL` masked. */
export function maskedConfig(config: Config): Config {
  return {
    ...config,
    auth: {
      ...config.auth,
      secret: config.auth.secretGenerated
        ? "(not set: a random key per process)"
        : `${MASK} (${config.auth.secret.length} characters)`,
    },
    redis: { ...config.redis, url: config.redis.url === null ? null : maskUrl(config.redis.url) },
  };
}

/** The URL with its password (or a lone user, which Redis takes as the password) masked. */
export function maskUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return MASK; // invalid URLs never load, but never echo one either
  }
  if (url.password !== "") url.password = MASK;
  else if (url.username !== "") url.username = MASK;
  return url.href;
}

function ms(value: number): string {
  return value % 1000 === 0 ? `${value / 1000} s` : `${value} ms`;
}

function limit(value: number): string {
  return value === 0 ? "off" : String(value);
}

/** A readable summary of a {@link maskedConfig}: one `label  value` line per aspect. */
export function describeConfig(config: Config): string {
  const { http, auth, access, redis, limits, channels, security, sse, presence } = config;
  const mode =
    redis.mode === "cluster"
      ? `cluster (REDIS_CLUSTER_NODES ${redis.clusterNodes.map((n) => `${n.host}:${n.port}`).join(",")}, prefix ${redis.prefix})`
      : redis.mode === "standalone"
        ? `redis (REDIS_URL ${redis.url}, prefix ${redis.prefix})`
        : "embedded (in-process broker: one pod only, no REDIS_URL)";
  const protocol = http.tls
    ? `h2 + http/1.1 over TLS (${http.tls.certFile})`
    : http.h2c
      ? "h2c"
      : "http/1.1";
  const metrics =
    http.metricsPort === null
      ? "GET /metrics on the public port"
      : `GET /metrics on ${http.metricsHost}:${http.metricsPort}`;
  const secret = auth.jwks ? `${auth.secret}; JWKS ${auth.jwks.url}` : auth.secret;
  const rate = security.rateLimit;
  const rows: [string, string][] = [
    ["NODE_ENV", `${config.nodeEnv} (log level ${config.logLevel})`],
    ["mode", mode],
    ["listen", `${http.host}:${http.port}, ${protocol}`],
    ["metrics", metrics],
    ["JWT_SECRET", secret],
    [
      "tokens",
      `${auth.algorithms.join(",")}, iss ${auth.issuer}, aud ${auth.audience}, ttl ${auth.tokenTtlSeconds} s`,
    ],
    ["dev login", auth.devLogin ? "on (anyone may name themselves)" : "off"],
    [
      "channel access",
      `${access.defaultAccess}${access.authzUrl ? `, AUTHZ_URL ${access.authzUrl}` : ""}`,
    ],
    [
      "streams",
      `${limits.maxConnections} per pod, ${limit(security.connections.perUser)} per user, ${limit(security.connections.perIp)} per IP, ${limits.maxChannelsPerStream} channels each`,
    ],
    [
      "slow clients",
      `cut at ${limits.slowClientMaxBytes} bytes queued or ${ms(limits.slowClientMaxStallMs)} stalled`,
    ],
    [
      "history",
      `${channels.historyMaxLength} events, ${channels.historyTtlSeconds} s; channels idle ${ms(channels.idleTtlMs)}`,
    ],
    [
      "rate limits",
      `per ${ms(rate.windowMs)}: publish ${limit(rate.publishPerService)}/service, streams ${limit(rate.streamsPerUser)}/user, chat ${limit(rate.chatPerUser)}/user, ${limit(rate.perChannel)}/channel`,
    ],
    ["body limit", `${http.bodyLimitBytes} bytes`],
    [
      "heartbeat",
      `${ms(sse.heartbeatIntervalMs)}, retry ${ms(sse.retryMs)} + ${ms(sse.retryJitterMs)} jitter`,
    ],
    ["presence", `grace ${ms(presence.graceMs)}, pod ttl ${ms(presence.ttlMs)}`],
    ["shutdown drain", ms(config.shutdown.drainMs)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`);
  const warnings = warningsOf(config).map((warning) => `warning: ${warning}`);
  return `configuration is valid; the service would run with:\n${lines.join("\n")}\n${warnings.map((w) => `${w}\n`).join("")}`;
}

/** What the service itself would warn about at start-up, and what operations.md advises. */
function warningsOf(config: Config): string[] {
  const warnings: string[] = [];
  if (config.auth.secretGenerated && config.auth.jwks === null) {
    warnings.push("JWT_SECRET is not set: a random key per process; tokens end with it");
  }
  if (config.isProduction && config.http.metricsPort === null) {
    warnings.push("METRICS_PORT is not set: /metrics is on the public port; deny it at the proxy");
  }
  if (config.isProduction && config.access.defaultAccess === "open") {
    warnings.push("CHANNEL_DEFAULT_ACCESS is open: every signed-in user may read every room");
  }
  return warnings;
}
