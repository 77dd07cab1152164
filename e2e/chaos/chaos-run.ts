/**
 * One chaos run: start the stage, sign users in, open the streams, publish while the fault
 * schedule plays, then — faults over — stop churning, let every publish settle, publish a final
 * event on every channel and wait until every stream has it, check presence, and judge the log.
 */
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { POD_SECRET } from "@realtime/testkit/pods";
import { redisCli } from "@realtime/testkit/redis";
import { check, type Verdict } from "./checker.ts";
import { FaultSchedule } from "./faults.ts";
import { closeAgents, H2Pool, type PodAddress, request } from "./http-client.ts";
import type { ChaosOptions } from "./options.ts";
import { checkPresence, type PresenceResult } from "./presence-check.ts";
import { Publisher } from "./publisher.ts";
import { RandomStreams } from "./random.ts";
import { type RunLog, seconds } from "./run-log.ts";
import { Stage } from "./stage.ts";
import { Subscriber } from "./subscriber.ts";

/** After the faults: how long presence may take to be right again. */
const PRESENCE_DEADLINE_MS = 15_000;
/** After the faults: how long the publishes in flight may go on retrying. */
const SETTLE_MS = 30_000;
/** How long every stream may take to receive the final events. */
const FINAL_MS = 60_000;

export interface ChaosResult {
  readonly verdict: Verdict;
  readonly presence: PresenceResult | null;
  readonly faults: number;
  readonly accepted: number;
  readonly unknown: number;
  readonly interrupted: boolean;
  /** The one-line summary (the run's last line of output). */
  readonly summary: string;
  readonly passed: boolean;
}

export async function runChaos(
  options: ChaosOptions,
  signal: AbortSignal,
  print: (line: string) => void,
): Promise<ChaosResult> {
  const t0 = performance.now();
  const clock = () => performance.now() - t0;
  const streams = new RandomStreams(options.seed);
  const faultRandom = streams.next();
  const publisherRandom = streams.next();
  const setupRandom = streams.next();
  const log: RunLog = { seed: options.seed, events: [], sessions: [], faults: [], strays: [] };
  const subscriberPool = new H2Pool();
  const publisherPool = new H2Pool();
  const mode = options.cluster ? "cluster" : "redis";
  print(
    `chaos: seed ${options.seed}, ${mode}, ${options.pods} pods, ${options.duration}s, ` +
      `${options.subscribers} streams, ${options.rate} events/s, faults: ${options.faults.join(",") || "none"}`,
  );
  const stage = await Stage.start({ cluster: options.cluster, pods: options.pods });
  const subscribers: Subscriber[] = [];
  try {
    const pods = (): PodAddress[] =>
      stage.pods.map((pod, i) => ({ port: pod.port, h2c: stage.h2c[i] ?? false }));
    print(
      `${seconds(clock())} stage up: ${stage.pods.map((p, i) => `pod${i} :${p.port}${stage.h2c[i] ? " (h2c)" : ""}`).join(", ")}`,
    );
    const users = await signIn(options.users, pods()[0] as PodAddress, publisherPool);
    const rooms = Array.from({ length: options.rooms }, (_, i) => `channel:room${i}`);
    const eventId = (json: Record<string, unknown>): number | null => {
      const text = json.type === "chat" ? json.content : json.message;
      const match = typeof text === "string" ? /^chaos:(\d+):(\d+)$/.exec(text) : null;
      return match && Number(match[1]) === options.seed ? Number(match[2]) : null;
    };
    for (let i = 0; i < options.subscribers; i++) {
      const user = setupRandom.pick(users);
      const count = setupRandom.chance(0.4) ? 1 : setupRandom.int(2, 3);
      const channels = new Set<string>();
      if (setupRandom.chance(0.3)) channels.add(`user:${user.id}`);
      while (channels.size < Math.min(count, rooms.length + 1))
        channels.add(setupRandom.pick(rooms));
      subscribers.push(
        new Subscriber({
          name: `s${i}`,
          userId: user.id,
          token: user.token,
          channels: [...channels],
          cutter: setupRandom.chance(0.3),
          random: streams.next(),
          pods,
          h2: subscriberPool,
          log,
          clock,
          eventId,
        }),
      );
    }
    for (const s of subscribers) s.start();
    await until(() => subscribers.every((s) => s.open), 20_000, signal);

    const publisher = new Publisher({
      seed: options.seed,
      rate: options.rate,
      rooms,
      userChannels: [...new Set(subscribers.flatMap((s) => s.channels))].filter((c) =>
        c.startsWith("user:"),
      ),
      userTokens: users.map((u) => u.token),
      serviceToken: serviceToken(POD_SECRET),
      random: publisherRandom,
      pods,
      h2: publisherPool,
      log,
      clock,
    });
    const schedule = new FaultSchedule({
      stage,
      random: faultRandom,
      faults: options.faults,
      clock,
      record: (fault) => log.faults.push(fault),
      log: print,
    });
    const trafficStart = clock();
    const publishing = publisher.run();
    const ticker = setInterval(() => {
      const accepted = log.events.filter((e) => e.ackAt !== null).length;
      const deliveries = log.sessions.reduce((n, s) => n + s.items.length, 0);
      print(
        `${seconds(clock())} progress: ${accepted} accepted, ${deliveries} received, ` +
          `${subscribers.filter((s) => s.open).length}/${subscribers.length} streams open, ` +
          `in force: ${[...schedule.inForce].join("; ") || "nothing"}`,
      );
    }, 10_000);
    try {
      await schedule.run(trafficStart + options.duration * 1000, signal);
      // Faults may all be over before the duration (none drawn, or --faults=none).
      const left = trafficStart + options.duration * 1000 - clock();
      if (left > 0) await sleep(left, undefined, { signal }).catch(() => {});
    } finally {
      clearInterval(ticker);
    }
    const calmAt = clock();
    print(`${seconds(calmAt)} faults over (${schedule.injected} injected): settling`);
    for (const s of subscribers) s.churn = false;
    const presence = signal.aborted
      ? Promise.resolve(null)
      : checkPresence({
          rooms,
          subscribers,
          pods,
          h2: publisherPool,
          token: (users[0] as { token: string }).token,
          clock,
          deadline: calmAt + PRESENCE_DEADLINE_MS,
        });
    publisher.stopIssuing();
    await publishing;
    await publisher.settle(signal.aborted ? clock() : clock() + SETTLE_MS);
    // Streams that did not get their channel's final event: a stream stuck after the faults
    // (the checker cannot see a lost tail of an open session; the final events close it). Two
    // rounds: a stream that comes back after the first round's event with a cursor a data loss
    // made stale gets a `reset` instead (which covers it); once every stream has one or the
    // other, every stream is live, and each must get the second round's event itself.
    let stalled: string[] = [];
    if (!signal.aborted) {
      const channels = [...new Set(subscribers.flatMap((s) => s.channels))];
      const missing = (finals: readonly number[], resetCovers: boolean) => {
        const finalOf = new Map(finals.map((id) => [log.events[id]?.channel, id]));
        return subscribers.flatMap((s) =>
          s.channels
            .filter((channel) => {
              const session = s.sessions().find((candidate) => candidate.channel === channel);
              const id = finalOf.get(channel) ?? -2;
              if (!session) return true;
              if (session.items.lastIndexOf(id) >= 0) return false;
              const acceptedAt = log.events[id]?.ackAt ?? Number.POSITIVE_INFINITY;
              return !(resetCovers && session.resets.some((r) => r.at >= acceptedAt));
            })
            .map((channel) => `${s.name} ${channel} (cursor ${s.lastEventId || "none"})`),
        );
      };
      const first = await publisher.publishFinal(channels, clock() + SETTLE_MS);
      await until(() => missing(first, true).length === 0, FINAL_MS, signal);
      const finals = await publisher.publishFinal(channels, clock() + SETTLE_MS);
      const missingNow = () => missing(finals, false);
      await until(() => missingNow().length === 0, FINAL_MS, signal);
      stalled = signal.aborted ? [] : missingNow();
      if (stalled.length > 0) {
        // What the pods say of their streams now (replay slots, streams), for the diagnosis.
        for (const [i, pod] of pods().entries()) {
          const answer = await request(pod, publisherPool, {
            method: "GET",
            path: "/metrics",
            headers: {},
            timeoutMs: 5_000,
          }).catch((error: unknown) => ({ status: 0, body: String(error) }));
          const lines = answer.body
            .split("\n")
            .filter((line) =>
              /^(sse_replays_|sse_connections |sse_queued_bytes|sse_stalled)/.test(line),
            );
          print(`${seconds(clock())} pod${i} /metrics ${answer.status}: ${lines.join("; ")}`);
        }
      }
      print(
        `${seconds(clock())} final events ${stalled.length === 0 ? "received by every stream" : `MISSING after ${FINAL_MS / 1000}s on: ${stalled.join(", ")}`}`,
      );
    }
    const presenceResult = await presence;
    if (presenceResult) {
      print(
        `${seconds(presenceResult.at)} presence: ${presenceResult.ok ? "every room matches who is connected" : `MISMATCH after ${PRESENCE_DEADLINE_MS / 1000}s: ${presenceResult.detail}`}`,
      );
    }
    for (const s of subscribers) s.churn = false;
    await Promise.all(subscribers.map((s) => s.stop()));
    if (signal.aborted) {
      // Interrupted: nobody is owed what had not arrived yet.
      for (const session of log.sessions) session.endedAt ??= clock();
    }
    const verdict = check(log);
    if (options.dump) {
      const connects = Object.fromEntries(subscribers.map((s) => [s.name, s.history]));
      const streams = subscribers.map((s) => ({
        name: s.name,
        user: s.userId,
        channels: s.channels,
      }));
      writeFileSync(options.dump, JSON.stringify({ ...log, streams, connects, verdict }));
      // What each pod logged (warnings and up) since its last start, next to the log.
      writeFileSync(
        `${options.dump}.pods.log`,
        stage.pods.map((pod, i) => `==== pod${i}\n${pod.output()}`).join("\n"),
      );
      // Presence as Redis holds it, when it did not match (single Redis): counters, every
      // pod's connection hash, grace periods, the pod registry.
      if (presenceResult?.ok === false && stage.redis) {
        writeFileSync(`${options.dump}.presence.txt`, await presenceKeys(stage.redis.port));
      }
    }
    const accepted = log.events.filter((e) => e.ackAt !== null).length;
    const unknown = log.events.length - accepted;
    const passed =
      !signal.aborted &&
      verdict.violations.length === 0 &&
      stalled.length === 0 &&
      presenceResult?.ok === true;
    const summary = [
      `chaos: seed=${options.seed}`,
      `mode=${mode}`,
      `duration=${options.duration}s`,
      `faults=${schedule.injected}`,
      `events=${log.events.length}`,
      `accepted=${accepted}`,
      `unknown=${unknown}`,
      `deliveries=${verdict.deliveries}`,
      `resets=${verdict.resets}`,
      `losses=${verdict.losses}`,
      `duplicates=${verdict.duplicates}`,
      `reorders=${verdict.reorders}`,
      `false_resets=${verdict.falseResets}`,
      `strays=${verdict.strays}`,
      `stalled=${stalled.length}`,
      `presence=${presenceResult === null ? "unchecked" : presenceResult.ok ? "ok" : "MISMATCH"}`,
      `result=${signal.aborted ? "INTERRUPTED" : passed ? "PASS" : "FAIL"}`,
    ].join(" ");
    return {
      verdict,
      presence: presenceResult,
      faults: schedule.injected,
      accepted,
      unknown,
      interrupted: signal.aborted,
      summary,
      passed,
    };
  } finally {
    await Promise.all(subscribers.map((s) => s.stop()));
    subscriberPool.close();
    publisherPool.close();
    closeAgents();
    await stage.stop();
  }
}

/** Resolves true once `test()` holds, false after `ms` or when `signal` aborts. */
async function until(test: () => boolean, ms: number, signal: AbortSignal): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!test()) {
    if (signal.aborted || performance.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

async function signIn(
  count: number,
  pod: PodAddress,
  h2: H2Pool,
): Promise<{ id: string; token: string }[]> {
  const users: { id: string; token: string }[] = [];
  for (let i = 0; i < count; i++) {
    const answer = await request(pod, h2, {
      method: "POST",
      path: "/api/auth/dev-login",
      headers: {},
      body: JSON.stringify({ name: `chaos${i}` }),
      timeoutMs: 10_000,
    });
    if (answer.status !== 200) throw new Error(`dev-login: ${answer.status} ${answer.body}`);
    const { token, user } = JSON.parse(answer.body) as { token: string; user: { id: string } };
    users.push({ id: user.id, token });
  }
  return users;
}

/** A service token with the `publish` scope, signed here (HS256) with the pods' secret. */
function serviceToken(secret: string): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const head = part({ alg: "HS256", typ: "JWT" });
  const body = part({
    iss: "realtime",
    aud: "realtime",
    sub: "svc:chaos",
    scope: "publish",
    iat: now,
    exp: now + 7 * 86_400,
  });
  const mac = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${mac}`;
}

/** Every presence key of a single Redis, with its contents, one per line. */
async function presenceKeys(port: number): Promise<string> {
  const keys = (await redisCli(port, "--scan", "--pattern", "*presence*")).split("\n").sort();
  const lines: string[] = [];
  for (const key of keys.filter(Boolean)) {
    const type = (await redisCli(port, "TYPE", key)).trim();
    const read =
      type === "hash"
        ? ["HGETALL", key]
        : type === "zset"
          ? ["ZRANGE", key, "0", "-1", "WITHSCORES"]
          : type === "set"
            ? ["SMEMBERS", key]
            : ["GET", key];
    lines.push(`${key} (${type}): ${(await redisCli(port, ...read)).trim().split("\n").join(" ")}`);
  }
  return `${lines.join("\n")}\n`;
}
