/** The service's HTTP API as the CLI calls it: where it is, and one line for a refusal. */
import { CliError } from "./command.ts";

/** `--url`, else `REALTIME_URL`, else this environment's own pod on loopback (`PORT`). */
export function serviceUrl(url: string | undefined, port: () => number): string {
  const base = url ?? process.env.REALTIME_URL ?? `http://127.0.0.1:${port()}`;
  try {
    return new URL(base).href.replace(/\/$/, "");
  } catch {
    throw new CliError(`--url must be the service's http(s) URL, got ${JSON.stringify(base)}`, 64);
  }
}

/** Sends a request; resolves with the parsed JSON body of a 2xx, throws one line otherwise. */
export async function call(
  method: "GET" | "POST",
  url: string,
  token: string,
  body?: unknown,
  headers: Readonly<Record<string, string>> = {},
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (error as Error).message;
    throw new CliError(`${method} ${url} failed: ${why}`);
  }
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below when the status is an error
  }
  if (!response.ok) {
    const { code, message } = (parsed ?? {}) as { code?: unknown; message?: unknown };
    const detail =
      typeof message === "string"
        ? `${typeof code === "string" ? `${code}: ` : ""}${message}`
        : text.slice(0, 200);
    throw new CliError(`${method} ${url}: ${response.status} ${detail}`.trim());
  }
  return parsed;
}
