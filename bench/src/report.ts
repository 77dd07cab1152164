/** The table: medians per scenario × server × metric, ratios against the peers, targets. */
import type { Measurement } from "./context.ts";
import { STORM_GOAL_MS } from "./storm.ts";

type Better = "lower" | "higher" | "none";

interface RowSpec {
  scenario: string;
  metric: string;
  label: string;
  better: Better;
  /** A target of issue 5: returns its verdict from the medians of each column. */
  target?: (v: Columns) => string;
}

type Columns = Record<Column, number | null | undefined>;
type Column = "realtime" | "Nchan" | "node:http" | "better-sse";
const COLUMNS: Column[] = ["realtime", "Nchan", "node:http", "better-sse"];

function columnOf(server: string): Column | null {
  for (const c of COLUMNS) if (server === c || server.startsWith(`${c} `)) return c;
  return null;
}

const fmt = (v: number | null | undefined): string => {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Math.round(v * 100) / 100);
};

function ratio(ours: number | null | undefined, peer: number | null | undefined): string {
  if (
    ours == null ||
    peer == null ||
    !Number.isFinite(ours) ||
    !Number.isFinite(peer) ||
    peer === 0
  ) {
    return "–";
  }
  return `${(ours / peer).toFixed(2)}×`;
}

function atMost(label: string, peer: Column) {
  return (v: Columns) => {
    const ours = v.realtime;
    const ref = v[peer];
    if (ours == null || ref == null) return "n/a";
    return ours <= ref
      ? `met (≤ ${peer})`
      : `missed: ${fmt(ours - ref)} ${label} over (${(ours / ref).toFixed(2)}×)`;
  };
}

function atLeast(label: string, peer: Column) {
  return (v: Columns) => {
    const ours = v.realtime;
    const ref = v[peer];
    if (ours == null || ref == null) return "n/a";
    return ours >= ref
      ? `met (≥ ${peer})`
      : `missed: ${fmt(ref - ours)} ${label} short (${(ours / ref).toFixed(2)}×)`;
  };
}

/** Rows for a scenario name family; fan-out names carry their shape. */
function specsFor(scenario: string): RowSpec[] {
  const s = scenario;
  if (s === "idle h2") {
    return [
      { scenario: s, metric: "kbPerStream", label: "KB per stream", better: "lower" },
      { scenario: s, metric: "acceptPerSec", label: "streams opened/s", better: "higher" },
      { scenario: s, metric: "refused", label: "refused", better: "lower" },
    ];
  }
  if (s === "idle") {
    return [
      {
        scenario: s,
        metric: "kbPerStream",
        label: "KB per stream",
        better: "lower",
        target: (v) =>
          v.realtime == null
            ? "n/a"
            : v.realtime <= 5
              ? "met (≤ 5 KB)"
              : `missed: ${fmt(v.realtime - 5)} KB over 5 KB (${(v.realtime / 5).toFixed(2)}×)`,
      },
      { scenario: s, metric: "acceptPerSec", label: "accepts/s", better: "higher" },
      { scenario: s, metric: "refused", label: "refused", better: "lower" },
    ];
  }
  if (s === "steady" || s === "h2 steady" || s.startsWith("steady (")) {
    const peer: Column = "Nchan";
    return [
      {
        scenario: s,
        metric: "cpuPct",
        label: "server CPU %",
        better: "lower",
        target: atMost("% CPU", peer),
      },
      { scenario: s, metric: "usPerDelivery", label: "CPU µs/delivery", better: "lower" },
      { scenario: s, metric: "p50Ms", label: "p50 ms", better: "lower" },
      {
        scenario: s,
        metric: "p99Ms",
        label: "p99 ms",
        better: "lower",
        target: atMost("ms", peer),
      },
      { scenario: s, metric: "maxMs", label: "max ms", better: "lower" },
      { scenario: s, metric: "loss", label: "loss", better: "lower" },
    ];
  }
  if (s === "cross-pod") {
    return [
      { scenario: s, metric: "p50Ms", label: "p50 ms", better: "lower" },
      {
        scenario: s,
        metric: "p99Ms",
        label: "p99 ms",
        better: "lower",
        target: atMost("ms", "Nchan"),
      },
      { scenario: s, metric: "maxMs", label: "max ms", better: "lower" },
      { scenario: s, metric: "usPerDelivery", label: "pod B CPU µs/delivery", better: "lower" },
      { scenario: s, metric: "loss", label: "loss", better: "lower" },
    ];
  }
  if (s.startsWith("fan-out") || s.startsWith("h2 fan-out") || s.startsWith("cross-pod burst")) {
    const is10k = s === "fan-out 10k×200";
    return [
      {
        scenario: s,
        metric: "deliveriesPerSec",
        label: "deliveries/s",
        better: "higher",
        target: is10k ? atLeast("deliveries/s", "Nchan") : undefined,
      },
      { scenario: s, metric: "usPerDelivery", label: "CPU µs/delivery", better: "lower" },
      { scenario: s, metric: "p50Ms", label: "p50 ms", better: "lower" },
      { scenario: s, metric: "p99Ms", label: "p99 ms", better: "lower" },
      { scenario: s, metric: "maxMs", label: "max ms", better: "lower" },
      { scenario: s, metric: "loss", label: "loss", better: "lower" },
    ];
  }
  if (s.startsWith("publish")) {
    return [
      { scenario: s, metric: "publishesPerSec", label: "POSTs/s", better: "higher" },
      { scenario: s, metric: "usPerPublish", label: "CPU µs/POST", better: "lower" },
      { scenario: s, metric: "loss", label: "loss", better: "lower" },
    ];
  }
  if (s === "capacity") {
    return [
      {
        scenario: s,
        metric: "streams",
        label: "streams held",
        better: "higher",
        target: (v) =>
          v.realtime == null
            ? "n/a"
            : v.realtime >= 19_500
              ? "met (≥ 19,500)"
              : `missed by ${fmt(19_500 - v.realtime)}`,
      },
      { scenario: s, metric: "dropped", label: "dropped after open", better: "lower" },
      {
        scenario: s,
        metric: "withRetryAfter",
        label: "503 + Retry-After",
        better: "none",
      },
      { scenario: s, metric: "resets", label: "resets/errors", better: "lower" },
      { scenario: s, metric: "hung", label: "hung (no answer in 10 s)", better: "lower" },
    ];
  }
  if (s.startsWith("reconnect storm")) {
    const goal = s === "reconnect storm";
    return [
      {
        scenario: s,
        metric: "allResumedMs",
        label: "ms to 100 % resumed (kill → last caught up)",
        better: "lower",
        target: goal
          ? (v) =>
              v.realtime == null
                ? "missed: not every stream caught up"
                : v.realtime <= STORM_GOAL_MS
                  ? "met (≤ 3 s)"
                  : `missed: ${fmt(v.realtime - STORM_GOAL_MS)} ms over 3 s`
          : undefined,
      },
      {
        scenario: s,
        metric: "allHeadersMs",
        label: "ms to 100 % reconnected (200 head)",
        better: "lower",
      },
      {
        scenario: s,
        metric: "p99ResumedMs",
        label: "p99 ms kill → caught up, per stream",
        better: "lower",
      },
      {
        scenario: s,
        metric: "p99Ms",
        label: "p99 ms of events published in the storm",
        better: "lower",
      },
      { scenario: s, metric: "maxMs", label: "max ms of those", better: "lower" },
      {
        scenario: s,
        metric: "loss",
        label: "loss",
        better: "lower",
        target: goal
          ? (v) => (v.realtime === 0 ? "met (0)" : v.realtime == null ? "n/a" : "missed")
          : undefined,
      },
      { scenario: s, metric: "resets", label: "resets", better: "none" },
      {
        scenario: s,
        metric: "replaysWaitingMax",
        label: "replays waiting for a slot, max",
        better: "none",
      },
      {
        scenario: s,
        metric: "podsCpuPct",
        label: "surviving pods CPU % of one core",
        better: "none",
      },
    ];
  }
  return [];
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Medians over runs: scenario → column → metric → value. */
export function medians(
  ms: readonly Measurement[],
): Map<string, Map<Column, Record<string, number | null>>> {
  const out = new Map<string, Map<Column, Record<string, number | null>>>();
  const groups = new Map<string, Measurement[]>();
  for (const m of ms) {
    const key = `${m.scenario}\u0000${m.server}`;
    const list = groups.get(key) ?? [];
    list.push(m);
    groups.set(key, list);
  }
  for (const list of groups.values()) {
    const first = list[0] as Measurement;
    const column = columnOf(first.server);
    if (!column) continue;
    const values: Record<string, number | null> = {};
    for (const key of Object.keys(first.values)) {
      values[key] = median(
        list.map((m) => m.values[key]).filter((x): x is number => typeof x === "number"),
      );
    }
    const byColumn = out.get(first.scenario) ?? new Map();
    byColumn.set(column, values);
    out.set(first.scenario, byColumn);
  }
  return out;
}

/** The main table as Markdown. */
export function table(ms: readonly Measurement[]): string {
  const med = medians(ms);
  const lines = [
    "| scenario | metric | realtime | Nchan | node:http | better-sse | vs Nchan | vs node:http | vs better-sse | target (issue 5) |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const [scenario, byColumn] of med) {
    for (const spec of specsFor(scenario)) {
      const v = {} as Columns;
      for (const c of COLUMNS) v[c] = byColumn.get(c)?.[spec.metric];
      const arrow = spec.better === "lower" ? " ↓" : spec.better === "higher" ? " ↑" : "";
      const r = (c: Column) => (spec.better === "none" ? "" : ratio(v.realtime, v[c]));
      lines.push(
        `| ${scenario} | ${spec.label}${arrow} | ${COLUMNS.map((c) => fmt(v[c])).join(" | ")} | ${r("Nchan")} | ${r("node:http")} | ${r("better-sse")} | ${spec.target ? spec.target(v) : ""} |`,
      );
    }
  }
  return lines.join("\n");
}

/** The history-cost table (issue 4). */
export function historyTable(ms: readonly Measurement[]): string {
  const rows = ms.filter((m) => m.scenario === "history cost (Redis)");
  if (rows.length === 0) return "";
  const by = new Map<string, Measurement[]>();
  for (const m of rows) by.set(m.server, [...(by.get(m.server) ?? []), m]);
  const value = (name: string, key: string) =>
    median(
      (by.get(name) ?? [])
        .map((m) => m.values[key])
        .filter((x): x is number => typeof x === "number"),
    );
  const base = value("without history (script minus XADD)", "publishesPerSec");
  const lines = [
    "| broker publish path (Redis, 64 in flight) | publishes/s | vs without history | Redis CPU µs/publish |",
    "|---|---:|---:|---:|",
  ];
  for (const name of by.keys()) {
    const pps = value(name, "publishesPerSec");
    lines.push(
      `| ${name} | ${fmt(pps)} | ${ratio(pps, base)} | ${fmt(value(name, "redisUsPerPublish"))} |`,
    );
  }
  return lines.join("\n");
}
