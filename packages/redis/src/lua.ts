/**
 * The Lua scripts, kept as `.lua` files in `lua/` and read once when their module loads. A
 * script's SHA is computed from the very text sent with `EVAL` (see {@link script}).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

export interface Script {
  readonly source: string;
  readonly sha: string;
}

/** The text of `lua/<name>`, as it is (no trimming: it is what Redis runs and hashes). */
export function readLua(name: string): string {
  return readFileSync(new URL(`./lua/${name}`, import.meta.url), "utf8");
}

/** `source` and the SHA1 Redis knows it by (`EVALSHA`). */
export function script(source: string): Script {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}
