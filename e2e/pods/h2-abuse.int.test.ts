/**
 * HTTP/2 abuse against a real h2c pod: a session that resets streams as fast as it can open
 * them ("rapid reset", CVE-2023-44487) and one that asks for more concurrent streams than the
 * pod allows. Other users must not notice: a stream on another session keeps receiving events.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { serviceToken } from "@realtime/testkit/load";
import { type Pod, startPod, stopPods } from "@realtime/testkit/pods";
import { until } from "@realtime/testkit/scenarios";

describe("HTTP/2 abuse (h2c pod)", { timeout: 120_000 }, () => {
  let pod: Pod;
  before(async () => {
    pod = await startPod({ HTTP2: "h2c" });
  });
  after(async () => {
    await stopPods([pod]);
  });

  /** POSTs JSON on an h2 session; resolves with the status and the parsed body. */
  async function post(
    session: http2.ClientHttp2Session,
    path: string,
    token: string | null,
    body: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    });
    stream.end(JSON.stringify(body));
    const [headers] = await once(stream, "response");
    let text = "";
    stream.setEncoding("utf8");
    for await (const chunk of stream) text += chunk;
    return { status: Number(headers[":status"]), body: JSON.parse(text || "{}") };
  }

  /** A session that reads one SSE stream and counts its `tick` events. */
  async function watcher(token: string) {
    const session = http2.connect(pod.url);
    const stream = session.request({
      ":path": "/api/events?channel=channel:h2abuse",
      authorization: `Bearer ${token}`,
    });
    const [headers] = await once(stream, "response");
    assert.equal(headers[":status"], 200);
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      text += chunk;
    });
    return { session, ticks: () => text.split('"type":"tick"').length - 1 };
  }

  it("rapid reset and the stream cap: the pod serves everyone else throughout", async () => {
    const control = http2.connect(pod.url);
    const signIn = await post(control, "/api/auth/dev-login", null, { name: "Bystander" });
    assert.equal(signIn.status, 200);
    const service = await serviceToken();
    const bystander = await watcher(signIn.body.token as string);
    const publish = async (n: number) => {
      const { status } = await post(control, "/api/publish", service, {
        channel: "channel:h2abuse",
        event: { type: "tick", message: `#${n}` },
      });
      assert.equal(status, 202);
    };
    const attacker = http2.connect(pod.url);
    attacker.on("error", () => {});
    try {
      await once(attacker, "remoteSettings");
      assert.equal(attacker.remoteSettings.maxConcurrentStreams, 128, "the default cap");

      // Rapid reset: open and cancel streams back to back, in batches, while events flow.
      let opened = 0;
      const attacking = () => !attacker.destroyed && !attacker.closed;
      for (let round = 0; round < 50; round++) {
        for (let i = 0; i < 100 && attacking(); i++) {
          const stream = attacker.request({ ":path": "/api/events?channel=channel:h2abuse" });
          stream.on("error", () => {});
          stream.close(http2.constants.NGHTTP2_CANCEL);
          opened++;
        }
        await publish(round);
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.ok(opened >= 100, `the attack ran (${opened} streams)`);
      // Node's rapid-reset defence ends the abusive session well before 5,000 resets. The
      // client learns it from the pod's GOAWAY and the connection's end, which may still be on
      // their way when the loop ends: wait for them (bounded), then count.
      await until(() => !attacking(), 10_000, "the pod to cut the attacker's session off");
      assert.ok(opened < 5_000, `the pod cut the attacker off after ${opened}`);
      await until(() => bystander.ticks() === 50, 15_000, "the bystander got every event");

      // And a healthy new session is served normally afterwards.
      const fresh = http2.connect(pod.url);
      try {
        const probe = fresh.request({ ":path": "/healthz" });
        const [headers] = await once(probe, "response");
        assert.equal(headers[":status"], 200);
        probe.resume();
      } finally {
        fresh.close();
      }
    } finally {
      attacker.destroy();
      bystander.session.destroy();
      control.destroy();
    }
  });
});
