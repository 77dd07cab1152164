/** docs/channels.md documents exactly the event types and reset reasons the protocol defines. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { EventType, ResetReason } from "./event.ts";

const docs = (name: string) =>
  readFileSync(new URL(`../../../docs/${name}`, import.meta.url), "utf8");

/** The first column's code spans of the table under `heading`, up to the next heading. */
function tableKeys(text: string, heading: string): string[] {
  const start = text.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `no "${heading}" section`);
  const rest = text.slice(start + heading.length + 2);
  const end = rest.search(/\n#+ /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return section
    .split("\n")
    .map((line) => /^\|\s*`([^`]+)`\s*\|/.exec(line)?.[1])
    .filter((key): key is string => key !== undefined);
}

describe("docs/channels.md and the protocol agree", () => {
  it("every event type the server emits has one row, and no row names another", () => {
    const rows = tableKeys(docs("channels.md"), "## Event types");
    assert.deepEqual([...rows].sort(), Object.values(EventType).sort());
  });
});

describe("docs/protocol.md and the protocol agree", () => {
  it("its list of reset reasons is the protocol's", () => {
    const text = docs("protocol.md");
    const start = text.indexOf("`reset` reasons:");
    assert.ok(start >= 0, "no list of `reset` reasons");
    const paragraph = text.slice(start, text.indexOf("\n\n", start));
    const listed = [...paragraph.matchAll(/`([a-z_]+)`\s*\(/g)].map((m) => m[1]);
    assert.deepEqual(listed.sort(), Object.values(ResetReason).sort());
  });
});
