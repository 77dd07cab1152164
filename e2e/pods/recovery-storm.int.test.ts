/**
 * The recovery storm (issue 4): clients on two real service processes, each client on 2–3
 * channels, publishing at ≥ 1 event per ms for several seconds through both pods, while every
 * client drops its connection again and again (every 300–500 ms) and reconnects — every other
 * time to the other pod — with its last cursor in `Last-Event-ID`, as a browser does. Every
 * client must end with every event of its channels exactly once, in order per channel:
 * 0 gaps, 0 duplicates, 0 resets.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { login, publishLoad, serviceToken, topOffsets } from "@realtime/testkit/load";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { checkChannel, perfect, StreamClient } from "@realtime/testkit/stream";

const CHANNELS = Array.from({ length: 6 }, (_, i) => `channel:storm${i}`);
const CLIENTS = 12;
const RATE = 1_250;
/** The load runs at least this long… */
const DURATION_MS = 5_000;
/** …and until every client has dropped and resumed this many times while it ran. */
const RECONNECTS = 8;

describe("recovery storm on two pods", { timeout: 180_000 }, () => {
  let redis: TestRedis;
  let a: Pod;
  let b: Pod;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    redis = await startRedis();
    [a, b] = (await withPods(2, { REDIS_URL: redis.url })) as [Pod, Pod];
  });
  after(async () => {
    await stopPods([a, b]);
    await redis?.stop();
    release?.();
  });

  it("clients cut every 300–500 ms and resuming on either pod get every event once, in order", async (t) => {
    const token = await serviceToken();
    const users = await Promise.all([login(a.url, "Storm A"), login(b.url, "Storm B")]);
    const pods = [a.url, b.url];
    const clients = Array.from({ length: CLIENTS }, (_, i) => {
      const size = i % 2 === 0 ? 2 : 3;
      const channels = Array.from({ length: size }, (_, k) => CHANNELS[(i + k * 2) % 6] as string);
      return new StreamClient((users[i % 2] as { token: string }).token, channels);
    });
    const cycles = clients.map(() => 0);
    try {
      for (const [i, client] of clients.entries()) {
        assert.equal(await client.connect(pods[i % 2] as string), 200);
      }
      const controller = new AbortController();
      // The load stops once it has run DURATION_MS and every client has reconnected RECONNECTS
      // times under it: the storm is what makes this test, so it is waited for, not hoped for
      // from a duration (a slow machine reconnects fewer times per second). The duration here
      // is only a backstop.
      const enough = new AbortController();
      const loadStarted = performance.now();
      const load = publishLoad({
        podUrls: () => pods,
        token,
        channels: CHANNELS,
        rate: RATE,
        durationMs: 120_000,
        concurrency: 24,
        signal: enough.signal,
      });
      // Each client: cut the connection after 300–500 ms, reconnect at once with its cursor;
      // every other reconnect goes to the other pod.
      let pod = clients.map((_, i) => i % 2);
      const storm = clients.map(async (client, i) => {
        try {
          while (!controller.signal.aborted) {
            await delay(300 + Math.random() * 200);
            if (controller.signal.aborted) break;
            client.close();
            cycles[i] = (cycles[i] ?? 0) + 1;
            if ((cycles[i] ?? 0) % 2 === 0) pod[i] = 1 - (pod[i] ?? 0);
            const status = await client.connect(pods[pod[i] ?? 0] as string);
            assert.equal(
              status,
              200,
              `client ${i} reconnect ${cycles[i]}: ${client.lastErrorBody}`,
            );
            if (
              cycles.every((n) => n >= RECONNECTS) &&
              performance.now() - loadStarted >= DURATION_MS
            ) {
              enough.abort();
            }
          }
        } catch (error) {
          enough.abort();
          throw error;
        }
      });
      const published = await load;
      controller.abort();
      await Promise.all(storm);
      pod = [];

      assert.deepEqual([...published.failures], [], "every publish accepted");
      const total = [...published.accepted.values()].reduce((s, m) => s + m.size, 0);
      // The storm aims at ≥ 1 event/ms (about 1,250/s on a quiet 2-core machine). The rate
      // reached depends on what else the machine runs, so it is reported, not asserted (a floor
      // failed here with both CPUs busy): what makes it a storm is every client reconnecting
      // at least RECONNECTS times while the load runs, which is checked below with every event.
      t.diagnostic(`published ${total} events at ${published.rate.toFixed(0)}/s`);
      const tops = topOffsets(published);
      for (const client of clients) {
        await client.untilOffsets(
          new Map(client.channels.map((c) => [c, tops.get(c) ?? 0])),
          20_000,
        );
      }
      let deliveries = 0;
      for (const [i, client] of clients.entries()) {
        assert.deepEqual(client.strays, []);
        for (const channel of client.channels) {
          const log = client.log.get(channel);
          assert.ok(log);
          const check = checkChannel(log, "tick", published.accepted.get(channel) ?? new Map());
          deliveries += check.received;
          assert.deepEqual(
            check,
            perfect(check),
            `client ${i} ${channel} after ${cycles[i]} reconnects: ${JSON.stringify(check)}`,
          );
        }
        assert.ok((cycles[i] ?? 0) >= RECONNECTS, `client ${i} reconnected ${cycles[i]} times`);
      }
      const reconnects = cycles.reduce((s, n) => s + n, 0);
      console.log(
        `storm: ${total} events at ${published.rate.toFixed(0)}/s, ${reconnects} reconnects, ` +
          `${deliveries} deliveries checked`,
      );
    } finally {
      for (const client of clients) client.close();
    }
  });
});
