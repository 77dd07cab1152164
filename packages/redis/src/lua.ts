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

/**
 * Reads `<name>` in the directory `dir` (a `file:` URL ending in `/`), as it is (no trimming:
 * it is what Redis runs and hashes). Other packages keep their scripts the same way:
 * `luaReader(new URL("./lua/", import.meta.url))`.
 */
export function luaReader(dir: URL): (name: string) => string {
  return (name) => readFileSync(new URL(name, dir), "utf8");
}

/** The text of `lua/<name>` of this package. */
export const readLua: (name: string) => string = luaReader(new URL("./lua/", import.meta.url));

/** `source` and the SHA1 Redis knows it by (`EVALSHA`). */
export function script(source: string): Script {
  return { source, sha: createHash("sha1").update(source).digest("hex") };
}
