/**
 * `npm run openapi`: writes `docs/openapi.json`, the OpenAPI document the service generates
 * (openapi-document.ts). Run it after changing a route's schemas or docs; the test
 * `openapi-artifact.test.ts` fails until the committed file matches.
 */
import { writeFile } from "node:fs/promises";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { generateOpenApi, OPENAPI_FILE } from "./openapi-document.ts";

const text = await generateOpenApi();
await writeFile(OPENAPI_FILE, text);
console.log(`wrote ${relative(process.cwd(), fileURLToPath(OPENAPI_FILE))}`);
