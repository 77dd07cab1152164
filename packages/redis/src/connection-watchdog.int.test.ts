/** The watchdog against a real partition: a TCP proxy whose open connections go silent. */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { waitFor } from "@realtime/server/testing";
import { startRedis, TcpProxy, type TestRedis } from "@realtime/testkit/redis";
import { Redis } from "ioredis";
import { watchConnection } from "./connection-watchdog.ts";

describe("watchConnection", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  const client = (url: string) =>
    new Redis(url, { commandTimeout: 300, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  const answers = async (c: Redis) => (await c.ping().catch(() => "")) === "PONG";

  it("replaces a connection that went silent, so commands work again", async () => {
    const proxy = await TcpProxy.start(redis.port);
    const watched = client(proxy.url);
    const unwatched = client(proxy.url);
    const stale: string[] = [];
    const unwatch = watchConnection(watched, {
      intervalMs: 100,
      timeoutMs: 500,
      onStale: (reason) => stale.push(reason),
    });
    try {
      await waitFor(async () => (await answers(watched)) && (await answers(unwatched)), "up");
      proxy.blackhole();
      assert.equal(await answers(watched), false, "the partition is real");
      await waitFor(() => answers(watched), "the watched client answers again", {
        timeoutMs: 10_000,
      });
      assert.equal(stale.length, 1, stale.join("; "));
      assert.match(stale[0] ?? "", /2 PINGs in a row/);
      // The control: ioredis alone keeps the silent connection.
      assert.equal(unwatched.status, "ready");
      assert.equal(await answers(unwatched), false, "the unwatched client is still cut off");
    } finally {
      unwatch();
      watched.disconnect();
      unwatched.disconnect();
      await proxy.close();
    }
  });

  it("leaves a healthy connection alone", async () => {
    const watched = client(redis.url);
    const stale: string[] = [];
    const unwatch = watchConnection(watched, { intervalMs: 20, onStale: (r) => stale.push(r) });
    try {
      await waitFor(() => answers(watched), "up");
      const id = await watched.client("ID");
      const pings = async () =>
        Number(/cmdstat_ping:calls=(\d+)/.exec(await watched.info("commandstats"))?.[1] ?? 0);
      const before = await pings();
      // Only this client talks to this server now: the count grows by the watchdog's pings.
      await waitFor(async () => (await pings()) >= before + 10, "ten watchdog pings");
      assert.equal(await watched.client("ID"), id, "the same connection throughout");
      assert.deepEqual(stale, []);
    } finally {
      unwatch();
      watched.disconnect();
    }
  });
});
