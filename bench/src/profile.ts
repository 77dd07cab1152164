/** Summarises a `--cpu-prof` profile: self time by function and by cost category. */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const CATEGORIES: [RegExp, string][] = [
  [/^\(garbage collector\)/, "GC"],
  [/^\(idle\)|^\(program\)/, "idle / native outside JS"],
  [
    /^(writev|writeUtf8String|writeLatin1String|writeBuffer|writeAsciiString|writeUcs2String)\b/,
    "socket writes (syscalls)",
  ],
  [/^(readStart|onStreamRead|epoll)/, "socket reads"],
  [/packages\/server\/src/, "hub (packages/server)"],
  [/packages\/protocol\/src/, "protocol (cursor, envelope)"],
  [/packages\/redis|ioredis/, "redis broker"],
  [/node_modules\/(fastify|find-my-way|light-my-request|avvio|@fastify)/, "fastify"],
  [/node_modules\/(jose)/, "auth (jose)"],
  [/node_modules\/(pino|prom-client)/, "logging / metrics"],
  [/apps\/service\/src/, "service routes"],
  [/node:internal\/streams|node:stream/, "node streams"],
  [/node:_http|node:http|_http_/, "node http"],
  [/node:internal\/http2|node:http2/, "node http2"],
  [/node:net|node:internal\/net|stream_base/, "node net"],
];

function categoryOf(name: string, url: string): string {
  const key = `${name} ${url}`;
  for (const [re, category] of CATEGORIES) {
    if (re.test(name) || re.test(url) || re.test(key)) return category;
  }
  return url === "" ? "native / builtins" : "other JS";
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  categories: { category: string; ms: number; pctOfBusy: number }[];
  functions: { fn: string; ms: number; pctOfBusy: number }[];
}

/**
 * Self time per function and category. With `window` (µs on the monotonic clock, which V8's
 * profile timestamps also use), only samples inside it count: the measured phase, without
 * start-up and module loading.
 */
export function summarise(
  path: string,
  window?: { fromUs: number; toUs: number },
  top = 20,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const self = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + delta);
  }
  let total = 0;
  let idle = 0;
  const categories = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idle += us;
      continue;
    }
    const category = categoryOf(functionName, url);
    categories.set(category, (categories.get(category) ?? 0) + us);
    const short = url.replace(/^file:\/\/.*?\/(packages|apps|node_modules)\//, "$1/");
    const fn =
      `${functionName || "(anonymous)"} ${short ? `${short}:${lineNumber + 1}` : ""}`.trim();
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => Math.round((us / busy) * 1000) / 10;
  return {
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    categories: [...categories]
      .sort((a, b) => b[1] - a[1])
      .map(([category, us]) => ({ category, ms: Math.round(us / 1000), pctOfBusy: pct(us) })),
    functions: [...functions]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), pctOfBusy: pct(us) })),
  };
}

export function summaryText(s: ProfileSummary): string {
  const lines = [
    `busy ${s.busyMs} ms of ${s.totalMs} ms profiled`,
    "",
    "| category | ms | % of busy |",
    "|---|---:|---:|",
  ];
  for (const c of s.categories) lines.push(`| ${c.category} | ${c.ms} | ${c.pctOfBusy} |`);
  lines.push("", "| function (self time) | ms | % of busy |", "|---|---:|---:|");
  for (const f of s.functions) lines.push(`| \`${f.fn}\` | ${f.ms} | ${f.pctOfBusy} |`);
  return lines.join("\n");
}
