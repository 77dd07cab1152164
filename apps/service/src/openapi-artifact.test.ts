/**
 * docs/openapi.json, the committed OpenAPI document: equal to what the service generates now
 * (else: how to regenerate it), generated the same way every time, and a valid OpenAPI 3
 * document by `@apidevtools/swagger-parser` (schema and semantic checks, every `$ref`).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import SwaggerParser from "@apidevtools/swagger-parser";
import {
  canonical,
  generateOpenApi,
  OPENAPI_FILE,
  REGENERATE_COMMAND,
} from "./openapi-document.ts";

/** The first line where two texts differ, both sides, for a readable failure. */
function firstDifference(committed: string, generated: string): string {
  const a = committed.split("\n");
  const b = generated.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `line ${i + 1}:\n  committed: ${a[i] ?? "(end of file)"}\n  generated: ${b[i] ?? "(end of file)"}`;
    }
  }
  return "(none)";
}

/** Every object's keys, at every level, in sorted order. */
function assertSortedKeys(value: unknown, where = "$"): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      assertSortedKeys(item, `${where}[${i}]`);
    });
    return;
  }
  if (value === null || typeof value !== "object") return;
  const keys = Object.keys(value);
  assert.deepEqual(keys, [...keys].sort(), `${where}: keys in sorted order`);
  for (const key of keys)
    assertSortedKeys((value as Record<string, unknown>)[key], `${where}.${key}`);
}

describe("docs/openapi.json", () => {
  it("is what the service generates now", async () => {
    const generated = await generateOpenApi();
    const committed = await readFile(OPENAPI_FILE, "utf8").catch(() => "");
    assert.ok(
      committed === generated,
      `docs/openapi.json is not what the service generates now; run \`${REGENERATE_COMMAND}\` and commit it.\nFirst difference, ${firstDifference(committed, generated)}`,
    );
  });

  it("is generated the same way every time: sorted keys, no server URL, no clock", async () => {
    const first = await generateOpenApi();
    const second = await generateOpenApi();
    assert.equal(first, second);
    assert.ok(first.endsWith("}\n"), "ends with one newline");
    const document = JSON.parse(first) as Record<string, unknown>;
    assertSortedKeys(document);
    assert.equal(document.servers, undefined, "no server URL: paths resolve against the origin");
    assert.doesNotMatch(first, /localhost|127\.0\.0\.1|\d{4}-\d\d-\d\dT\d\d:/);
  });

  it("is a valid OpenAPI 3 document", async () => {
    const document = JSON.parse(await readFile(OPENAPI_FILE, "utf8")) as { openapi: string };
    assert.match(document.openapi, /^3\./);
    // validate() resolves references in place: give it a copy.
    await SwaggerParser.validate(structuredClone(document) as never);
  });

  it("the validator refuses what OpenAPI 3.0 does not allow", async () => {
    // A control: the check above passes because the document is valid, not because nothing is
    // checked. A type list is JSON Schema, not OpenAPI 3.0 (which has `nullable`).
    const document = JSON.parse(await readFile(OPENAPI_FILE, "utf8")) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const healthz = document.paths["/healthz"]?.get;
    assert.ok(healthz, "GET /healthz is in the document");
    healthz.responses["200"] = {
      description: "Alive",
      content: { "application/json": { schema: { type: ["string", "null"] } } },
    };
    await assert.rejects(SwaggerParser.validate(document as never));
    const unresolved = JSON.parse(await readFile(OPENAPI_FILE, "utf8")) as typeof document;
    unresolved.paths["/healthz"]!.get!.responses["200"] = {
      description: "Alive",
      content: { "application/json": { schema: { $ref: "#/components/schemas/Nothing" } } },
    };
    await assert.rejects(SwaggerParser.validate(unresolved as never));
  });

  it("canonical() sorts keys and keeps the order of arrays", () => {
    assert.equal(
      JSON.stringify(canonical({ b: 1, a: { d: [3, { f: 1, e: 2 }], c: null } })),
      '{"a":{"c":null,"d":[3,{"e":2,"f":1}]},"b":1}',
    );
  });
});
