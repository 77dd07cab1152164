/**
 * The readiness gauges say what `GET /readyz` answers, at each real transition of one pod on a
 * redis-server started here (never the machine's shared one): ready; the broker lost (Redis
 * killed) and back (Redis started again); draining (a shutdown with a stream still open).
 *
 * - `realtime_ready`: 1 exactly when `/readyz` answers 200;
 * - `realtime_broker_ready`: 1 while the broker is confirmed live (else `/readyz` says
 *   `RT_ERR_BROKER_UNAVAILABLE`);
 * - `realtime_draining`: 1 from the moment a shutdown starts (`/readyz` says
 *   `RT_ERR_SHUTTING_DOWN`).
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { metricValue, request, until } from "@realtime/testkit/http";
import { scrape } from "@realtime/testkit/metrics";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp1 } from "@realtime/testkit/sse-client";

const GAUGES = ["realtime_ready", "realtime_broker_ready", "realtime_draining"] as const;

describe("readiness gauges", { timeout: 60_000 }, () => {
  let redis: TestRedis;
  let svc: RunningService;
  before(async () => {
    redis = await startRedis();
    // Pinned: the drain closes a stream at 3/4 of its window, so the drain is there to watch.
    svc = await startService(
      { REDIS_URL: redis.url, REDIS_PREFIX: `rm-${randomUUID()}` },
      { random: () => 0.75 },
    );
  });
  after(async () => {
    await svc?.stop();
    await redis?.stop();
  });

  /** `/readyz`'s status and code, and the gauges, read one after the other. */
  async function readiness() {
    const ready = await request(`${svc.url}/readyz`);
    const text = await scrape(svc);
    const gauges = Object.fromEntries(GAUGES.map((name) => [name, metricValue(text, name)]));
    for (const name of GAUGES) {
      assert.match(text, new RegExp(`^# TYPE ${name} gauge$`, "m"), name);
    }
    return { status: ready.status, code: ready.json?.code ?? null, ...gauges };
  }

  it("follow /readyz: ready, broker lost, broker back, draining", async () => {
    assert.deepEqual(await readiness(), {
      status: 200,
      code: null,
      realtime_ready: 1,
      realtime_broker_ready: 1,
      realtime_draining: 0,
    });

    await redis.kill();
    await until(
      async () => (await request(`${svc.url}/readyz`)).status === 503,
      "/readyz 503 once Redis is gone",
      15_000,
    );
    assert.deepEqual(await readiness(), {
      status: 503,
      code: "RT_ERR_BROKER_UNAVAILABLE",
      realtime_ready: 0,
      realtime_broker_ready: 0,
      realtime_draining: 0,
    });

    await redis.restart();
    await until(
      async () => (await request(`${svc.url}/readyz`)).status === 200,
      "/readyz 200 once Redis is back",
      15_000,
    );
    assert.deepEqual(await readiness(), {
      status: 200,
      code: null,
      realtime_ready: 1,
      realtime_broker_ready: 1,
      realtime_draining: 0,
    });

    // A stream holds the drain open (its close comes at 3/4 of the window).
    const { token } = await svc.login("Ada");
    const stream = await openHttp1(`${svc.url}/api/events?channel=channel:ready`, {
      authorization: `Bearer ${token}`,
    });
    assert.equal(stream.status, 200);
    const stopping = svc.service.shutdown(4000);
    try {
      assert.deepEqual(await readiness(), {
        status: 503,
        code: "RT_ERR_SHUTTING_DOWN",
        realtime_ready: 0,
        realtime_broker_ready: 1,
        realtime_draining: 1,
      });
      await stream.waitFor((e) => e.event === "close", 10_000);
    } finally {
      stream.close();
      await stopping;
    }
  });
});
