/**
 * Reading environment variables with validation that collects every problem instead of
 * stopping at the first, so one restart shows everything to fix. It knows no section of the
 * configuration: each section's file (`http.ts`, `redis.ts`, …) reads its own variables with
 * it, and `../config.ts` composes them.
 */

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

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
