import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RunningService, startService } from "../testing/harness.ts";
import { openHttp1 } from "../testing/sse-client.ts";

describe("POST /api/publish", () => {
  let svc: RunningService;
  let serviceToken: string;
  before(async () => {
    svc = await startService();
    serviceToken = await svc.service.auth.issueServiceToken({
      service: "worker",
      scopes: ["publish"],
    });
  });
  after(() => svc.stop());

  it("puts a service's event on the broker path; subscribers receive it", async () => {
    const ada = await svc.login("Ada");
    const stream = await openHttp1(`${svc.url}/api/events?channel=user:${ada.user.id}`, {
      authorization: `Bearer ${ada.token}`,
    });
    const res = await svc.post("/api/publish", serviceToken, {
      channel: `user:${ada.user.id}`,
      event: { type: "notification", message: "report ready", reportId: "r_1" },
    });
    assert.equal(res.status, 202);
    assert.deepEqual(res.body, { channel: `user:${ada.user.id}`, offset: 1 });
    const event = await stream.waitFor((e) => e.event === undefined);
    const data = JSON.parse(event.data);
    assert.equal(data.type, "notification");
    assert.equal(data.reportId, "r_1");
    assert.equal(data.channel, `user:${ada.user.id}`);
    stream.close();
  });

  it("403 for a user token and for a service token without the publish scope", async () => {
    const ada = await svc.login("Ada");
    const readOnly = await svc.service.auth.issueServiceToken({
      service: "reader",
      scopes: ["read"],
    });
    for (const token of [ada.token, readOnly]) {
      const res = await svc.post("/api/publish", token, {
        channel: "channel:a",
        event: { type: "x" },
      });
      assert.equal(res.status, 403);
      assert.equal((res.body as { code: string }).code, "RT_ERR_FORBIDDEN");
    }
    const anonymous = await svc.post("/api/publish", null, {
      channel: "channel:a",
      event: { type: "x" },
    });
    assert.equal(anonymous.status, 401);
  });

  it("400 for bad channels and events, 413 for an oversized event", async () => {
    for (const body of [
      { channel: "room:a", event: { type: "x" } },
      { channel: "channel:a", event: { type: "reset" } },
      { channel: "channel:a", event: { type: "Bad Type" } },
      { channel: "channel:a", event: { type: "x", channel: "user:u_other" } },
      { channel: "channel:a", event: { type: "x", "bad\nfield": 1 } },
      { channel: "channel:a", event: [1] },
      { channel: "channel:a", event: { type: "x" }, extra: true },
    ]) {
      const res = await svc.post("/api/publish", serviceToken, body);
      assert.equal(res.status, 400, JSON.stringify(body));
    }
    const big = await svc.post("/api/publish", serviceToken, {
      channel: "channel:a",
      event: { type: "x", content: "y".repeat(20_000) },
    });
    assert.equal(big.status, 413);
  });
});
