/**
 * `npm run bench:abuse`: the cheap attacks of issue 14, findings 1–3, each run for a fixed time
 * against a real pod (pinned to the server core, as `npm run bench` runs it), reporting the
 * pod's live heap (a full GC before each reading) and, in Redis mode, Redis's memory and key
 * count — before, at the peak, and once the attacker stopped and the idle TTL passed — and how
 * a bystander's chat round trip fared meanwhile. Each attack runs twice: as one ordinary user
 * (default limits) and past the limits (stream-open and presence-read limits off: an attacker
 * with many accounts), which is what the bounds are for.
 *
 *   npm run bench:abuse                      everything (~5 min)
 *   npm run bench:abuse -- --seconds=10      shorter attacks
 *   npm run bench:abuse -- --only=rooms,replay
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadConfig } from "@realtime/service";
import { Redis } from "ioredis";
import { elapsedLog } from "../generator.ts";
import { startPinnedRedis } from "../servers.ts";
import { type AttackResult, freshRooms, replayFlood } from "./attacks.ts";
import { Bystanders } from "./bystanders.ts";
import { AbusePod } from "./pod.ts";

const RESULTS = fileURLToPath(new URL("../../results/", import.meta.url));
/** How long the Redis presence store keeps a decision for a retry (presence-script.ts). */
const PRESENCE_REPLY_TTL_MS = 60_000;
/** Idle TTL of the pods under attack: short, so "after" comes within the run. */
const IDLE_TTL_MS = 10_000;

function arg(name: string): string | undefined {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const ms = (us: number) => `${(us / 1000).toFixed(1)} ms`;

interface Row {
  readonly attack: string;
  readonly who: string;
  readonly result: AttackResult;
}

async function main(): Promise<void> {
  const seconds = Number(arg("seconds") ?? 20);
  const only = arg("only")?.split(",") ?? ["rooms", "redis", "replay"];
  const started = Date.now();
  const log = elapsedLog(started);
  const rows: Row[] = [];
  // The bench's pods turn the per-user limits off for their one-user load: an attack as one
  // ordinary user puts the service's defaults back.
  const defaults = loadConfig({}).security;
  const oneUser = {
    RATE_LIMIT_STREAMS_MAX: String(defaults.rateLimit.streamsPerUser),
    RATE_LIMIT_STREAM_CHANNELS_MAX: String(defaults.rateLimit.streamChannelsPerUser),
    RATE_LIMIT_PRESENCE_MAX: String(defaults.rateLimit.presencePerUser),
    RATE_LIMIT_CHAT_MAX: String(defaults.rateLimit.chatPerUser),
    CHANNEL_PUBLISH_MAX: String(defaults.rateLimit.perChannel),
    MAX_CONNECTIONS_PER_USER: String(defaults.connections.perUser),
  };
  const limitsOff = {
    RATE_LIMIT_STREAMS_MAX: "0",
    RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
    RATE_LIMIT_PRESENCE_MAX: "0",
    RATE_LIMIT_CHAT_MAX: "0",
    MAX_CONNECTIONS_PER_USER: "0",
  };
  const common = { CHANNEL_IDLE_TTL_MS: String(IDLE_TTL_MS) };

  for (const [who, env] of [
    ["one user, default limits", oneUser],
    ["many accounts (per-user limits off)", limitsOff],
  ] as const) {
    if (only.includes("rooms")) {
      log(`finding 1, embedded, ${who}`);
      const pod = await AbusePod.start({ ...common, ...env });
      try {
        const result = await run(pod, null, seconds, (signal) =>
          freshRooms(pod, signal, { presenceReads: false }),
        );
        rows.push({ attack: "1: fresh rooms, embedded", who, result });
      } finally {
        await pod.stop();
      }
    }
    if (only.includes("redis")) {
      log(`finding 2, Redis, ${who}`);
      const redis = await startPinnedRedis();
      const pod = await AbusePod.start({ ...common, ...env, REDIS_URL: redis.url });
      const client = new Redis(redis.url);
      try {
        const result = await run(pod, client, seconds, (signal) =>
          freshRooms(pod, signal, { presenceReads: true }),
        );
        rows.push({ attack: "2: fresh rooms + presence reads, Redis", who, result });
      } finally {
        client.disconnect();
        await pod.stop();
        await redis.stop();
      }
    }
  }
  if (only.includes("replay")) {
    log("finding 3, Redis: resumes from an old cursor that never read");
    const redis = await startPinnedRedis();
    const pod = await AbusePod.start({
      ...common,
      ...limitsOff,
      REDIS_URL: redis.url,
      MAX_CONNECTIONS_PER_USER: "0",
    });
    const client = new Redis(redis.url);
    try {
      const flood = await replayFlood.prepare(pod);
      const result = await run(pod, client, seconds, (signal) => flood.run(signal));
      rows.push({
        attack: "3: 64 stuck resumers × 16 MiB replays, Redis",
        who: "8 accounts",
        result,
      });
    } finally {
      client.disconnect();
      await pod.stop();
      await redis.stop();
    }
  }

  const head =
    "| attack | who | work done | pod live heap: before → at the attack's end (heap used at most) → after | Redis: before → peak → after | bystander chat RTT p50 / p99 / max; refused, lost |";
  const lines = [
    `# realtime abuse bench — ${new Date().toISOString()}`,
    "",
    `Each attack ${seconds} s against one pod (CHANNEL_IDLE_TTL_MS=${IDLE_TTL_MS}); "after" is read once the attacker stopped and the idle TTL passed (Redis: and the minute presence decisions are kept). Live heap = V8 heap used after a full GC.`,
    "",
    head,
    "|---|---|---|---|---|---|",
    ...rows.map(({ attack, who, result: r }) => {
      const cells = [
        attack,
        who,
        r.broker
          ? `${r.work}; pod held ≤ ${r.broker.channels} channels, ${mib(r.broker.historyBytes)} history`
          : r.work,
        `${mib(r.heap.before)} → ${mib(r.heap.end)} (used ≤ ${mib(r.heap.peakUsed)}) → ${mib(r.heap.after)}`,
        r.redis
          ? `${mib(r.redis.before.bytes)} / ${r.redis.before.keys} keys → ${mib(r.redis.peak.bytes)} / ${r.redis.peak.keys} → ${mib(r.redis.after.bytes)} / ${r.redis.after.keys}`
          : "—",
        `${ms(r.bystander.p50)} / ${ms(r.bystander.p99)} / ${ms(r.bystander.max)}; ${r.bystander.refused} refused, ${r.bystander.lost} lost`,
      ];
      return `| ${cells.join(" | ")} |`;
    }),
  ];
  const text = lines.join("\n");
  console.log(`\n${text}`);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}abuse-latest.md`, `${text}\n`);
  writeFileSync(`${RESULTS}abuse-latest.json`, JSON.stringify(rows, null, 2));
  log(`done; results in ${RESULTS}abuse-latest.{md,json}`);
}

/**
 * Runs `attack` for `seconds` with bystanders chatting, sampling the pod (and Redis) every
 * second; then stops it and waits out the idle TTL for the "after" reading.
 */
async function run(
  pod: AbusePod,
  redis: Redis | null,
  seconds: number,
  attack: (signal: AbortSignal) => Promise<string>,
): Promise<AttackResult> {
  const redisNow = async () =>
    redis ? { bytes: await usedMemory(redis), keys: await redis.dbsize() } : null;
  const before = { heap: await pod.liveHeap(), redis: await redisNow() };
  const bystanders = await Bystanders.start(pod);
  const controller = new AbortController();
  const attacking = attack(controller.signal);
  let peakUsed = before.heap;
  let peakRedis = before.redis;
  let peakChannels = 0;
  let peakHistory = 0;
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // No forced collection while the bystanders measure: heap used (garbage included) here.
    peakUsed = Math.max(peakUsed, await pod.metric("realtime_nodejs_heap_size_used_bytes"));
    peakChannels = Math.max(peakChannels, await pod.metric("realtime_broker_channels"));
    peakHistory = Math.max(peakHistory, await pod.metric("realtime_history_bytes"));
    const now = await redisNow();
    if (now && peakRedis && now.bytes > peakRedis.bytes) peakRedis = now;
  }
  // What the attack built up is largest at its end: the live heap then.
  const endLive = await pod.liveHeap();
  controller.abort();
  const work = await attacking;
  // Redis also keeps each presence decision a minute, for a retry of its call.
  const settleMs = redis ? Math.max(IDLE_TTL_MS, PRESENCE_REPLY_TTL_MS) : IDLE_TTL_MS;
  await new Promise((resolve) => setTimeout(resolve, settleMs + 5_000));
  const bystander = await bystanders.stop();
  return {
    work,
    broker: redis ? null : { channels: peakChannels, historyBytes: peakHistory },
    heap: { before: before.heap, end: endLive, peakUsed, after: await pod.liveHeap() },
    redis:
      before.redis && peakRedis
        ? { before: before.redis, peak: peakRedis, after: (await redisNow()) ?? before.redis }
        : null,
    bystander,
  };
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info("memory");
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

await main();
process.exit(0);
