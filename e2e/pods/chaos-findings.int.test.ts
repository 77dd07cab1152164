/**
 * What `npm run chaos` found, each reduced to one deterministic case with real pods and a
 * redis-server this file starts itself. A case the service does not pass yet is a `todo`: it
 * runs (and says so in the report) without failing the suite, until the fix lands and the
 * `todo` goes (docs/reliability.md, "Known failures").
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { login, postJson, serviceToken } from "@realtime/testkit/load";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { redisCli, startRedis, type TestRedis } from "@realtime/testkit/redis";
import { until } from "@realtime/testkit/scenarios";
import { StreamClient } from "@realtime/testkit/stream";

describe("Redis back from an older RDB, republished past its old top before any check (chaos seed 7)", {
  timeout: 120_000,
}, () => {
  let redis: TestRedis;
  let a: Pod;
  let b: Pod;
  let token: string;
  before(async () => {
    redis = await startRedis();
    [a, b] = (await withPods(2, { REDIS_URL: redis.url })) as [Pod, Pod];
    token = await serviceToken();
  });
  after(async () => {
    for (const pod of [a, b]) if (pod && !pod.dead) process.kill(pod.pid, "SIGCONT");
    await stopPods([a, b]);
    await redis?.stop();
  });

  const publish = async (channel: string, from: number, count: number) => {
    for (let i = from; i < from + count; i++) {
      const { status, body } = await postJson(b.url, "/api/publish", token, {
        channel,
        event: { type: "tick", message: `#${i}` },
      });
      assert.equal(status, 202, body);
    }
  };

  it("the events published into the reused offsets reach the client, or a reset does", async () => {
    const channel = "channel:rdb";
    const user = await login(a.url, "Rdb");
    const client = new StreamClient(user.token, [channel]);
    try {
      assert.equal(await client.connect(a.url), 200);
      await publish(channel, 0, 10);
      await client.untilOffsets(new Map([[channel, 10]]), 10_000);
      // The snapshot Redis will come back from, then five events it acknowledges after it.
      await redisCli(redis.port, "SAVE");
      await publish(channel, 10, 5);
      await client.untilOffsets(new Map([[channel, 15]]), 10_000);
      // Pod A (the client's) is frozen while Redis restarts from the snapshot and pod B (no
      // subscriber of the channel, so nothing to check) publishes five new events: offsets
      // 11–15 again. In the chaos run a black-holed pod's backlog did this within milliseconds.
      process.kill(a.pid, "SIGSTOP");
      try {
        await redis.kill();
        await redis.restart();
        await until(async () => (await b.readyz()) === 200, 20_000, "pod B ready");
        await publish(channel, 15, 5);
      } finally {
        process.kill(a.pid, "SIGCONT");
      }
      await until(async () => (await a.readyz()) === 200, 20_000, "pod A ready");
      await publish(channel, 20, 1);
      await client.until(
        () => client.log.get(channel)?.events.some((e) => e.json.message === "#20") ?? false,
        15_000,
        () => client.describe(),
      );
      const log = client.log.get(channel);
      assert.ok(log);
      const got = log.events.map((e) => e.json.message);
      const republished = ["#15", "#16", "#17", "#18", "#19"];
      // Either every one of them arrived, or a reset came before the next event that did
      // (#20): a reset after it would leave #15–#19 missing between #14 and #20 unannounced.
      const beforeNext = (log.resetAt[0] ?? Number.POSITIVE_INFINITY) <= got.indexOf("#20");
      assert.ok(
        republished.every((m) => got.includes(m)) || beforeNext,
        `neither the events published after the restart nor a reset before #20 arrived: ${JSON.stringify(got.slice(-8))}, resets at ${JSON.stringify(log.resetAt)}`,
      );
    } finally {
      client.close();
    }
  });
});
