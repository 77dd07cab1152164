/**
 * The `Dockerfile` read as data, and its runtime stage replayed without a container engine: its
 * COPY lines copied into a directory (the image's WORKDIR) in order, its `npm ci` run there. The
 * production-tree test builds the tree it starts from this, so what the test runs is what the
 * image holds — a COPY added to or dropped from the Dockerfile changes the test's tree too.
 *
 * Only what the project's Dockerfile uses is understood (shell-form COPY without globs, ENV
 * `KEY=value` pairs, RUN lines of `npm ci` and apt-get); anything else throws, so the Dockerfile
 * cannot grow a step the test would silently skip.
 */
import { cp, mkdir, stat } from "node:fs/promises";
import { isAbsolute, join, posix, relative } from "node:path";

export interface Instruction {
  /** Upper-case: `COPY`, `RUN`, … */
  readonly keyword: string;
  /** The rest of the logical line, continuations joined with a space. */
  readonly args: string;
  /** 1-based line where it starts. */
  readonly line: number;
}

export interface Stage {
  /** The base image (`node:24-slim`) or an earlier stage's name. */
  readonly from: string;
  readonly name: string | null;
  readonly instructions: readonly Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const stages: { from: string; name: string | null; instructions: Instruction[] }[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let logical = lines[i]?.trim() ?? "";
    if (logical === "" || logical.startsWith("#")) continue;
    while (logical.endsWith("\\")) {
      logical = logical.slice(0, -1).trimEnd();
      i++;
      const next = lines[i]?.trim();
      if (next === undefined) break;
      // Comment lines inside a continuation are dropped, as Docker does.
      if (!next.startsWith("#")) logical += ` ${next}`;
    }
    const [keyword = "", ...rest] = logical.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(" "), line: start };
    if (instruction.keyword === "FROM") {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!match?.[1]) throw new Error(`Dockerfile:${start}: cannot read FROM ${instruction.args}`);
      stages.push({ from: match[1], name: match[2] ?? null, instructions: [] });
    } else if (stages.length === 0) {
      throw new Error(`Dockerfile:${start}: ${instruction.keyword} before the first FROM`);
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** The instructions of `stage` with `keyword`. */
export function instructions(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** An exec-form (`["a", "b"]`) argument list. */
export function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === "string")) {
    throw new Error(`not an exec-form list: ${args}`);
  }
  return parsed;
}

/** `--flag value`/`--flag=value` options and the rest of an instruction (HEALTHCHECK's CMD). */
export function splitFlags(args: string): { flags: Map<string, string>; rest: string } {
  const flags = new Map<string, string>();
  let rest = args.trim();
  for (let match = /^--([a-z-]+)=(\S*)\s*/.exec(rest); match; ) {
    flags.set(match[1] ?? "", match[2] ?? "");
    rest = rest.slice(match[0].length);
    match = /^--([a-z-]+)=(\S*)\s*/.exec(rest);
  }
  return { flags, rest };
}

/** ENV `KEY=value …` (unquoted values only). */
export function envPairs(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of args.split(/\s+/)) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'\s]*)$/.exec(pair);
    if (!match?.[1]) throw new Error(`ENV: cannot read ${JSON.stringify(pair)} (KEY=value only)`);
    env[match[1]] = match[2] ?? "";
  }
  return env;
}

export interface Copy {
  /** `--from` stage name, or null for the build context. */
  readonly from: string | null;
  readonly sources: readonly string[];
  readonly dest: string;
}

export function readCopy(instruction: Instruction): Copy {
  const { flags, rest } = splitFlags(instruction.args);
  const unknown = [...flags.keys()].filter((flag) => flag !== "from" && flag !== "chown");
  if (unknown.length > 0 || rest.startsWith("[")) {
    throw new Error(`Dockerfile:${instruction.line}: COPY the test cannot replay: ${rest}`);
  }
  const parts = rest.split(/\s+/);
  const dest = parts.pop();
  if (!dest || parts.length === 0 || parts.some((p) => /[*?[]/.test(p))) {
    throw new Error(`Dockerfile:${instruction.line}: COPY needs plain sources and a destination`);
  }
  return { from: flags.get("from") ?? null, sources: parts, dest };
}

/** The commands of a RUN line (`a && b` → [["a"], ["b"]], split on white space). */
export function runCommands(instruction: Instruction): string[][] {
  return instruction.args.split("&&").map((command) => command.trim().split(/\s+/));
}

export interface ReplayOptions {
  /** The build context (the repository). */
  readonly context: string;
  /** Where each earlier stage's WORKDIR is on this machine (`build` → the repository). */
  readonly stageRoots: Readonly<Record<string, { workdir: string; root: string }>>;
  /** The directory standing for the stage's WORKDIR. */
  readonly tree: string;
  /** Runs `npm ci …` (the arguments after `npm`) in `tree` with the stage's ENV so far. */
  readonly npm: (args: readonly string[], env: Readonly<Record<string, string>>) => Promise<void>;
}

export interface Replayed {
  /** The stage's ENV. */
  readonly env: Record<string, string>;
  /** The stage's WORKDIR (the directory `tree` stands for). */
  readonly workdir: string;
  /** What the image installs with apt-get (not replayed: e.g. tini). */
  readonly aptPackages: readonly string[];
  /** The arguments of the `npm ci` that was run. */
  readonly npmCi: readonly string[];
}

/**
 * Replays `stage` into `options.tree`: WORKDIR, ENV, COPY (in order) and the `npm ci` of its RUN
 * lines. apt-get steps are recorded, not run (the machine has what they install); other RUN
 * commands throw.
 */
export async function replayStage(stage: Stage, options: ReplayOptions): Promise<Replayed> {
  const env: Record<string, string> = {};
  const aptPackages: string[] = [];
  let workdir: string | null = null;
  let npmCi: string[] | null = null;
  const inTree = (path: string): string => {
    if (workdir === null) throw new Error("COPY before WORKDIR: the test needs the image's root");
    const absolute = posix.resolve(workdir, path);
    const inside = posix.relative(workdir, absolute);
    if (inside.startsWith("..")) throw new Error(`${path} is outside WORKDIR ${workdir}`);
    return join(options.tree, inside);
  };
  for (const instruction of stage.instructions) {
    switch (instruction.keyword) {
      case "WORKDIR":
        workdir = posix.resolve(workdir ?? "/", instruction.args);
        await mkdir(options.tree, { recursive: true });
        break;
      case "ENV":
        Object.assign(env, envPairs(instruction.args));
        break;
      case "COPY": {
        const copy = readCopy(instruction);
        const from = copy.from === null ? null : options.stageRoots[copy.from];
        if (copy.from !== null && !from) throw new Error(`COPY --from=${copy.from}: unknown stage`);
        const dest = inTree(copy.dest);
        for (const source of copy.sources) {
          const path = from
            ? join(from.root, relative(from.workdir, posix.resolve(from.workdir, source)))
            : join(options.context, source);
          if (!from && (isAbsolute(source) || source.startsWith(".."))) {
            throw new Error(`COPY ${source}: outside the build context`);
          }
          const info = await stat(path); // throws when the Dockerfile names what is not there
          // A directory's contents go into dest; a file goes into dest/ or becomes dest.
          const target =
            info.isDirectory() || !copy.dest.endsWith("/")
              ? dest
              : join(dest, posix.basename(source));
          await mkdir(info.isDirectory() ? target : join(target, ".."), { recursive: true });
          await cp(path, target, { recursive: true });
        }
        break;
      }
      case "RUN":
        for (const [program, ...args] of runCommands(instruction)) {
          if (program === "npm" && args[0] === "ci") {
            await options.npm(args, env);
            npmCi = args;
          } else if (program === "npm" && args[0] === "cache") {
            // The image's own cache; this machine's is shared with other work.
          } else if (program === "apt-get" && args.includes("install")) {
            aptPackages.push(...args.filter((a) => !a.startsWith("-") && a !== "install"));
          } else if (
            program === "apt-get" ||
            (program === "rm" && args.at(-1)?.startsWith("/var/lib/apt"))
          ) {
            // apt's own bookkeeping
          } else {
            throw new Error(`Dockerfile:${instruction.line}: RUN ${program} … cannot be replayed`);
          }
        }
        break;
      default:
      // USER, EXPOSE, STOPSIGNAL, HEALTHCHECK, ENTRYPOINT, CMD: read by the test itself.
    }
  }
  if (workdir === null || npmCi === null) throw new Error("the stage has no WORKDIR or npm ci");
  return { env, workdir, aptPackages, npmCi };
}
