/**
 * What presence costs Redis: one pod holding 10,000 SSE connections of 1,000 users (10 tabs
 * each, spread over 100 rooms), with the default timings (TTL 10 s, heartbeat every 3 s).
 * Counts commands with `INFO commandstats` deltas on a throwaway redis-server it starts itself.
 *
 *     node scripts/presence-cost.ts [--seconds 30] [--users 1000] [--tabs 10] [--rooms 100]
 *
 * Prints the one-off cost of the joins and leaves, and the steady-state upkeep in commands per
 * second (the number that must not grow with the connection count). Not a test: it takes time.
 */
import { parseArgs } from "node:util";
import type { ChannelName } from "@realtime/protocol";
import { RedisPresenceStore } from "@realtime/redis";
import { Hub, MemoryBroker, Presence } from "@realtime/server";
import { FakeConnection } from "@realtime/server/testing";
import { redisCli, startRedis } from "@realtime/testkit/redis";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    users: { type: "string", default: "1000" },
    tabs: { type: "string", default: "10" },
    rooms: { type: "string", default: "100" },
  },
});
const seconds = Number(values.seconds);
const users = Number(values.users);
const tabs = Number(values.tabs);
const rooms = Number(values.rooms);

/** Total command calls since the server started, by command, without INFO itself. */
async function commandCalls(port: number): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const line of (await redisCli(port, "INFO", "commandstats")).split("\n")) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match?.[1] && match[1] !== "info") calls.set(match[1], Number(match[2]));
  }
  return calls;
}

function delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, calls] of after) {
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) out.set(name, d);
  }
  return out;
}

const total = (calls: Map<string, number>) => [...calls.values()].reduce((a, b) => a + b, 0);
const show = (calls: Map<string, number>) =>
  [...calls].map(([name, n]) => `${name}=${n}`).join(" ") || "none";

/** Waits until `check` holds, polling. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 50));
}

const redis = await startRedis();
const store = new RedisPresenceStore({
  url: redis.url,
  prefix: "bench",
  logger: { warn: (message) => console.warn(message) },
});
// A memory broker: presence events are published, but only presence commands reach Redis.
const hub = new Hub({ broker: new MemoryBroker(), maxConnections: users * tabs + 1 });
const presence = new Presence({ hub, store });
const connections: FakeConnection[] = [];
try {
  await presence.tick(); // registers the pod
  const beforeJoin = await commandCalls(redis.port);
  const joinStarted = performance.now();
  const opening: Promise<unknown>[] = [];
  for (let u = 0; u < users; u++) {
    for (let t = 0; t < tabs; t++) {
      const connection = new FakeConnection();
      connections.push(connection);
      const room = `channel:room_${(u * tabs + t) % rooms}` as ChannelName;
      opening.push(hub.open({ userId: `u${u}`, channels: [room], connect: () => connection }));
    }
  }
  await Promise.all(opening);
  await presence.flush();
  const joinMs = performance.now() - joinStarted;
  const joined = delta(beforeJoin, await commandCalls(redis.port));
  const online = (
    await Promise.all(
      Array.from({ length: rooms }, (_, r) => presence.snapshot(`channel:room_${r}`)),
    )
  ).reduce((sum, { users }) => sum + users.reduce((s, u) => s + u.connections, 0), 0);

  const beforeIdle = await commandCalls(redis.port);
  const idleStarted = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
  const idleSeconds = (performance.now() - idleStarted) / 1_000;
  const idle = delta(beforeIdle, await commandCalls(redis.port));

  const beforeLeave = await commandCalls(redis.port);
  for (const connection of connections) connection.hangUp();
  await until(() => hub.connectionCount === 0);
  await presence.flush();
  const left = delta(beforeLeave, await commandCalls(redis.port));

  console.log(
    `presence upkeep, one pod: ${users * tabs} connections, ${users} users, ${rooms} rooms`,
  );
  console.log(
    `  joins:  ${total(joined)} commands for ${users * tabs} joins in ${joinMs.toFixed(0)} ms (${show(joined)}); ${online} connections in Redis`,
  );
  console.log(
    `  idle:   ${total(idle)} commands in ${idleSeconds.toFixed(1)} s = ${(total(idle) / idleSeconds).toFixed(2)} commands/s (${show(idle)})`,
  );
  console.log(`  leaves: ${total(left)} commands for ${users * tabs} leaves (${show(left)})`);
  console.log(
    `  for comparison, a TTL refresh per connection every 3 s would be ${((users * tabs) / 3).toFixed(0)} commands/s`,
  );
} finally {
  await presence.stop();
  await hub.close();
  await store.close();
  await redis.stop();
}
