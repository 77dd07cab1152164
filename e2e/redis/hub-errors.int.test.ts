/**
 * What a client is told when the broker (Redis) cannot serve it, with a real redis-server
 * started here and killed: a stream that cannot open says so — not "The event could not be
 * published", the publish wording every broker failure used to get — and a publish says its
 * event was not published. Both are 503 `RT_ERR_BROKER_UNAVAILABLE` with `Retry-After`.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { openStream, postJson, refusal } from "@realtime/testkit/http";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { type RunningService, startService } from "@realtime/testkit/service";

describe("refusals while the broker is down", { timeout: 60_000 }, () => {
  let redis: TestRedis;
  let svc: RunningService;
  before(async () => {
    redis = await startRedis();
    svc = await startService({ REDIS_URL: redis.url, REDIS_PREFIX: `he-${randomUUID()}` });
  });
  after(async () => {
    await svc?.stop();
    await redis?.stop();
  });

  it("a stream that cannot open says so; a publish says its event was not published", async () => {
    const { token } = await svc.login("Ada");
    const auth = { authorization: `Bearer ${token}` };
    const up = await openStream(`${svc.url}/api/events?channel=channel:before`, auth);
    assert.equal(up.status, 200, "a stream opens while Redis is up");
    up.close();

    await redis.kill();
    const down = await openStream(`${svc.url}/api/events?channel=channel:after`, auth);
    assert.equal(down.status, 503);
    assert.ok(Number(down.headers["retry-after"]) >= 1, "Retry-After");
    const body = await refusal(down);
    assert.equal(body.code, "RT_ERR_BROKER_UNAVAILABLE");
    assert.match(String(body.message), /stream could not be opened/i);
    assert.doesNotMatch(String(body.message), /publish/i);

    const posted = await postJson(`${svc.url}/api/chat/messages`, token, {
      channel: "after",
      content: "hello?",
    });
    assert.equal(posted.status, 503);
    assert.equal(posted.json?.code, "RT_ERR_BROKER_UNAVAILABLE");
    assert.match(String(posted.json?.message), /event could not be published/i);
  });
});
