/**
 * The machinery behind {@link loadConfig}: reading environment variables with validation that
 * collects every problem, and the readers of the sections that need more than one variable.
 * Split out of `config.ts`, which keeps the shape of the configuration and its defaults.
 */
import { randomBytes } from "node:crypto";
import { isIP } from "node:net";
import type { HttpConfig, RedisConfig, RedisNode } from "./config.ts";

/** Shortest accepted `JWT_SECRET`, in characters (HS256 wants at least 256 bits of key). */
export const MIN_JWT_SECRET_LENGTH = 32;

export type Env = Record<string, string | undefined>;

/** Reads variables and collects every problem instead of stopping at the first. */
export class EnvReader {
  readonly #env: Env;
  readonly problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  /** The raw value; an empty string counts as unset (as `FOO=` in an env file means "no value"). */
  raw(name: string): string | undefined {
    const value = this.#env[name];
    return value === undefined || value === "" ? undefined : value;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  /** A decimal integer in [min, max]; no signs, exponents, fractions or spaces. */
  int(name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
      this.problems.push(`${name} must be a decimal integer ${range}, got ${show(value)}`);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (value === "true" || value === "1") return true;
    if (value === "false" || value === "0") return false;
    this.problems.push(`${name} must be "true" or "false", got ${show(value)}`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.problems.push(`${name} must be one of ${allowed.join(", ")}; got ${show(value)}`);
    return fallback;
  }
}

/** Quotes a rejected value for an error message, shortened and without control characters. */
export function show(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing them is the point
  const safe = value.replace(/[\u0000-\u001f\u007f]/g, "?");
  return JSON.stringify(safe.length > 40 ? `${safe.slice(0, 40)}…` : safe);
}

export function readTls(r: EnvReader): HttpConfig["tls"] {
  const certFile = r.raw("TLS_CERT");
  const keyFile = r.raw("TLS_KEY");
  if (certFile && keyFile) return { certFile, keyFile };
  if (certFile || keyFile) {
    r.problems.push("TLS_CERT and TLS_KEY must be set together (or neither)");
  }
  return null;
}

export function readSecret(r: EnvReader, isProduction: boolean) {
  const secret = r.raw("JWT_SECRET");
  if (secret === undefined) {
    if (isProduction) {
      r.problems.push(
        `JWT_SECRET is required in production (at least ${MIN_JWT_SECRET_LENGTH} characters)`,
      );
    }
    // A fresh key per process: dev tokens never outlive the process, and there is no
    // well-known default key that could leak into a deployment.
    return { secret: randomBytes(32).toString("base64url"), secretGenerated: true };
  }
  if (secret.length < MIN_JWT_SECRET_LENGTH) {
    // Never echo the secret, not even partly.
    r.problems.push(
      `JWT_SECRET must be at least ${MIN_JWT_SECRET_LENGTH} characters, got ${secret.length}`,
    );
  }
  return { secret, secretGenerated: false };
}

/** RFC 6265 cookie-name token characters, so the name never needs quoting. */
const COOKIE_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;

export function readCookieName(r: EnvReader): string {
  const name = r.string("COOKIE_NAME", "rt_session");
  if (!COOKIE_NAME_PATTERN.test(name)) {
    r.problems.push(`COOKIE_NAME must be a cookie token ([A-Za-z0-9_-] etc.), got ${show(name)}`);
  }
  return name;
}

/** Keys and channels embed the prefix, so keep it to characters that need no escaping. */
const REDIS_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export function readRedis(r: EnvReader): RedisConfig {
  const url = r.raw("REDIS_URL") ?? null;
  if (url !== null) {
    let protocol = "";
    try {
      protocol = new URL(url).protocol;
    } catch {
      // reported below
    }
    if (protocol !== "redis:" && protocol !== "rediss:") {
      // The URL may carry a password: name the problem, not the value.
      r.problems.push("REDIS_URL must be a redis:// or rediss:// URL");
    }
  }
  const prefix = r.string("REDIS_PREFIX", "realtime");
  if (!REDIS_PREFIX_PATTERN.test(prefix)) {
    r.problems.push(`REDIS_PREFIX must match ${REDIS_PREFIX_PATTERN.source}, got ${show(prefix)}`);
  }
  const clusterNodes = readClusterNodes(r);
  const mode = clusterNodes.length > 0 ? "cluster" : url !== null ? "standalone" : "embedded";
  // Below the broker's 2 s command timeout, which bounds the pipeline WAIT rides in.
  const waitReplicas = r.int("REDIS_WAIT_REPLICAS", 0, 0, 16);
  const waitTimeoutMs = r.int("REDIS_WAIT_TIMEOUT_MS", 500, 1, 1500);
  return { mode, url, prefix, clusterNodes, waitReplicas, waitTimeoutMs };
}

function readClusterNodes(r: EnvReader): RedisNode[] {
  const value = r.raw("REDIS_CLUSTER_NODES");
  if (value === undefined) return [];
  const nodes: RedisNode[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    // host:port, with the port after the last colon so bracketed IPv6 hosts work too.
    const colon = item.lastIndexOf(":");
    const host = item.slice(0, colon);
    const portText = item.slice(colon + 1);
    const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
    if (colon <= 0 || host.length === 0 || port < 1 || port > 65535) {
      r.problems.push(`REDIS_CLUSTER_NODES must be a comma list of host:port, got ${show(item)}`);
      continue;
    }
    nodes.push({ host: host.replace(/^\[(.*)\]$/, "$1"), port });
  }
  return nodes;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** An IPv4/IPv6 address, optionally with a `/prefix` length. */
function isAddressOrCidr(value: string): boolean {
  const slash = value.indexOf("/");
  const address = slash < 0 ? value : value.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = value.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  return /^[0-9]{1,3}$/.test(bits) && Number(bits) <= max;
}

/**
 * `TRUST_PROXY`: unset or `false` → false; a hop count (1–10); or a comma list of proxy
 * addresses/CIDRs. `true` (believe any `X-Forwarded-For`) is refused: it lets every client
 * pick its own IP and walk past the per-IP limits.
 */
export function readTrustProxy(r: EnvReader): false | number | readonly string[] {
  const value = r.raw("TRUST_PROXY");
  if (value === undefined || value === "false" || value === "0") return false;
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value);
    if (hops >= 1 && hops <= 10) return hops;
  } else if (value !== "true") {
    const parts = value.split(",").map((part) => part.trim());
    if (parts.every((part) => part.length > 0 && isAddressOrCidr(part))) return parts;
  }
  r.problems.push(
    `TRUST_PROXY must be false, a hop count 1..10, or a comma list of proxy IPs/CIDRs (never "true"), got ${show(value)}`,
  );
  return false;
}
