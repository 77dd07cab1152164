/**
 * Faults between a pod and Redis that do not close anything cleanly, with real pods and real
 * redis-servers (started here):
 * - the pod's Redis connections turn into a black hole (a network partition: open, silent);
 * - Redis cuts a pod's subscriber connection because the pod fell behind reading it
 *   (`client-output-buffer-limit pubsub`), here because the pod was frozen (SIGSTOP).
 * In both, every client must end with every event once, in order, without a reset (history
 * still has them), and the pod must say it is unready while it cannot deliver.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  assertComplete,
  login,
  postJson,
  publishLoad,
  serviceToken,
  topOffsets,
} from "@realtime/testkit/load";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { type Pod, startPod, stopPods } from "@realtime/testkit/pods";
import { redisCli, startRedis, TcpProxy, type TestRedis } from "@realtime/testkit/redis";
import { ReadyWatch, until } from "@realtime/testkit/scenarios";
import { StreamClient } from "@realtime/testkit/stream";

const CHANNELS = ["channel:f1", "channel:f2"];

describe("Redis faults that close nothing", { timeout: 120_000 }, () => {
  let redis: TestRedis;
  let proxy: TcpProxy;
  let a: Pod;
  let b: Pod;
  let token: string;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    redis = await startRedis();
    proxy = await TcpProxy.start(redis.port);
    // Pod B reaches Redis through the proxy; pod A directly.
    [a, b] = await Promise.all([
      startPod({ REDIS_URL: redis.url }),
      startPod({ REDIS_URL: proxy.url }),
    ]);
    token = await serviceToken();
  });
  after(async () => {
    await stopPods([a, b].filter(Boolean));
    await proxy?.close();
    await redis?.stop();
    release?.();
  });

  it("a black-holed Redis link: the probe notices, the pod is unready, then complete again", async () => {
    const user = await login(b.url, "Partition");
    const client = new StreamClient(user.token, CHANNELS);
    const watch = new ReadyWatch(b);
    try {
      assert.equal(await client.connect(b.url), 200);
      const load = publishLoad({
        podUrls: () => [a.url],
        token,
        channels: CHANNELS,
        rate: 200,
        durationMs: 30_000,
        maxEvents: 3_000,
      });
      await until(() => client.count("channel:f1", "tick") >= 50, 10_000, "flow");
      proxy.blackhole();
      // The probe runs every 5 s with a 2 s timeout: a partition is seen within ~7 s.
      await until(() => watch.transitions.includes(503), 15_000, "pod B unready");
      await until(() => watch.recovered(), 20_000, "pod B ready again");
      const published = await load;
      assert.deepEqual([...published.failures], [], "pod A took every publish");
      await assertComplete([client], published);
      assert.deepEqual(client.statuses, [200], "the stream stayed open throughout");

      // Pod B's other Redis clients (presence, limits) replaced their silent connections too:
      // its presence snapshot answers, and publishing through it flows.
      await until(
        async () => {
          const response = await fetch(`${b.url}/api/channels/channel:f1/presence`, {
            headers: { authorization: `Bearer ${user.token}` },
          });
          const body = (await response.json()) as { users?: { userId: string }[] };
          return (
            response.status === 200 && body.users?.some((u) => u.userId === user.user.id) === true
          );
        },
        15_000,
        "pod B's presence snapshot",
      );
      const through = await publishLoad({
        podUrls: () => [b.url],
        token,
        channels: CHANNELS,
        rate: 200,
        durationMs: 10_000,
        maxEvents: 200,
      });
      assert.deepEqual([...through.failures], [], "pod B takes publishes again");
      await client.untilOffsets(topOffsets(through), 10_000);
    } finally {
      client.close();
      await watch.stop();
    }
  });

  it("a frozen pod whose subscriber Redis cut for falling behind: backfilled, complete", async () => {
    await redisCli(redis.port, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 32kb 1");
    const user = await login(a.url, "Frozen");
    const client = new StreamClient(user.token, CHANNELS);
    const filler = new StreamClient(user.token, ["channel:filler"]);
    // Pod A is frozen: it reaches Redis directly (the proxy would buffer for pod B).
    const watch = new ReadyWatch(b);
    try {
      assert.equal(await client.connect(a.url), 200);
      assert.equal(await filler.connect(a.url), 200);
      const load = publishLoad({
        podUrls: () => [b.url],
        token,
        channels: CHANNELS,
        rate: 1_000,
        durationMs: 30_000,
        maxEvents: 3_000,
      });
      await until(() => client.count("channel:f1", "tick") >= 50, 10_000, "flow");
      const kills = async () =>
        Number(
          /client_output_buffer_limit_disconnections:(\d+)/.exec(
            await redisCli(redis.port, "INFO", "stats"),
          )?.[1],
        );
      const before = await kills();
      process.kill(a.pid, "SIGSTOP");
      try {
        // The ticks alone fit in the kernel's socket buffers; big events on another channel
        // of the same subscriber connection fill them, then Redis's output buffer for it.
        for (let n = 0; (await kills()) === before; n++) {
          assert.ok(n < 2_000, "Redis never cut the frozen pod's subscriber");
          await Promise.all(
            Array.from({ length: 20 }, async () => {
              const { status } = await postJson(b.url, "/api/publish", token, {
                channel: "channel:filler",
                event: { type: "filler", message: "x".repeat(12_000) },
              });
              assert.equal(status, 202);
            }),
          );
        }
      } finally {
        process.kill(a.pid, "SIGCONT");
      }
      const published = await load;
      assert.deepEqual([...published.failures], []);
      await assertComplete([client], published);
      assert.deepEqual(client.statuses, [200], "the stream stayed open throughout");
      assert.deepEqual(await watch.stop(), [200], "pod B was never affected");
    } finally {
      client.close();
      filler.close();
      await watch.stop();
      await redisCli(
        redis.port,
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "pubsub 32mb 8mb 60",
      );
    }
  });
});
