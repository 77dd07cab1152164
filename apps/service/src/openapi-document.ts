/**
 * The OpenAPI document as an artifact: `docs/openapi.json`, committed, written by
 * `npm run openapi` (openapi-cli.ts) and kept equal to what the service generates by
 * `openapi-artifact.test.ts`. Generated from a service built with every setting at its default
 * (not from this process's environment), so the same code always gives the same bytes: keys in
 * sorted order at every level, no timestamps, no server URL (the document describes paths; a
 * client resolves them against wherever it fetched the document, as OpenAPI's default `/`).
 */
import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";

/** Where the committed document lives. */
export const OPENAPI_FILE = new URL("../../../docs/openapi.json", import.meta.url);

/** The command that rewrites {@link OPENAPI_FILE}. */
export const REGENERATE_COMMAND = "npm run openapi";

/** The environment the document is generated under: defaults only, the docs turned on. */
const ENV = {
  NODE_ENV: "test",
  LOG_LEVEL: "silent",
  // Any valid secret: nothing is signed, it only lets the config load.
  JWT_SECRET: "openapi-document-openapi-document-openapi",
  OPENAPI_DOCS: "true",
} as const;

/** The document, as the text `docs/openapi.json` holds (two-space indent, final newline). */
export async function generateOpenApi(): Promise<string> {
  const service = await buildApp(loadConfig(ENV), { logger: false });
  try {
    await service.app.ready();
    return `${JSON.stringify(canonical(service.app.swagger()), null, 2)}\n`;
  } finally {
    await service.shutdown(0);
  }
}

/** A copy with every object's keys sorted; arrays keep their order (it can mean something). */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    sorted[key] = canonical((value as Record<string, unknown>)[key]);
  }
  return sorted;
}
