/**
 * Presence across pods on a real Redis (issue 7's acceptance): two in-process services sharing
 * one test Redis, and real pod processes for the SIGKILL case. Waits are on events or on state
 * the pods report, with deadlines; never bare sleeps.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { waitFor } from "@realtime/server/testing";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import {
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from "@realtime/testkit/redis";
import { type RunningService, startService, TEST_SECRET } from "@realtime/testkit/service";
import { openHttp1, type SseClient } from "@realtime/testkit/sse-client";

const GRACE_MS = 1_000;

interface Presence {
  userId: string;
  status: string;
  receivedAt: number;
}

/** A stream that records the presence events and chat markers of one room. */
async function watch(url: string, room: string, token: string) {
  const stream = await openHttp1(`${url}/api/events?channel=${room}`, {
    authorization: `Bearer ${token}`,
  });
  assert.equal(stream.status, 200);
  const presence: Presence[] = [];
  let seen = 0;
  const collect = () => {
    for (; seen < stream.events.length; seen++) {
      const data = JSON.parse(stream.events[seen]?.data ?? "{}");
      if (data.type === "presence") presence.push({ ...data, receivedAt: Date.now() });
    }
  };
  return {
    stream,
    of(userId: string) {
      collect();
      return presence.filter((p) => p.userId === userId).map((p) => p.status);
    },
    at(userId: string, status: string) {
      collect();
      return presence.find((p) => p.userId === userId && p.status === status)?.receivedAt;
    },
  };
}

const isMarker = (content: string) => (e: { data: string }) =>
  (JSON.parse(e.data) as { content?: string }).content === content;

describe("presence across two pods sharing one Redis", () => {
  let redis: TestRedis;
  let pods: RunningService[];
  const open: SseClient[] = [];
  before(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: `pr_${randomBytes(4).toString("hex")}`,
      PRESENCE_GRACE_MS: String(GRACE_MS),
      PRESENCE_TTL_MS: "4000",
      PRESENCE_REFRESH_MS: "500",
    };
    pods = [await startService(env), await startService(env)];
  });
  after(async () => {
    for (const stream of open) stream.close();
    await Promise.all(pods.map((p) => p.stop()));
    await redis?.stop();
  });

  const [A, B] = [0, 1];
  const pod = (i: number) => {
    const running = pods[i];
    assert.ok(running, `pod ${i} runs`);
    return running;
  };
  const connect = async (i: number, room: string, token: string) => {
    const stream = await openHttp1(`${pod(i).url}/api/events?channel=${room}`, {
      authorization: `Bearer ${token}`,
    });
    assert.equal(stream.status, 200);
    open.push(stream);
    return stream;
  };
  /** Every presence change so far is in Redis and every decided event published. */
  const settled = () => Promise.all(pods.map((p) => p.service.presence.flush()));
  /** Publishes a chat marker and waits for it: everything published before has arrived. */
  let markers = 0;
  const marker = async (room: string, token: string, watcher: SseClient) => {
    const content = `marker ${++markers}`;
    await settled();
    const res = await pod(A).post("/api/chat/messages", token, { channel: room, content });
    assert.equal(res.status, 204);
    await watcher.waitFor(isMarker(content), 5_000);
  };
  const snapshot = async (room: string, token: string) => {
    const res = await pod(B).service.app.inject({
      url: `/api/channels/${room}/presence`,
      headers: { authorization: `Bearer ${token}` },
    });
    return (res.json() as { users: { userId: string; connections: number }[] }).users;
  };
  const noGraceLeft = () =>
    waitFor(() => pods.every((p) => p.service.presence.pendingGraces === 0), "graces settled");

  it("one user, three connections on two pods: one online; two close: nothing; last: one offline after the grace period", async () => {
    const room = "channel:three_tabs";
    const watcherLogin = await pod(B).login("Watcher");
    const ada = await pod(A).login("Ada");
    const watcher = await watch(pod(B).url, room, watcherLogin.token);
    const tabs = [
      await connect(A, room, ada.token),
      await connect(A, room, ada.token),
      await connect(B, room, ada.token),
    ];
    await marker(room, watcherLogin.token, watcher.stream);
    assert.deepEqual(watcher.of(ada.user.id), ["online"]);
    assert.equal(pod(A).service.presence.usersOnline, 1);

    tabs[0]?.close();
    tabs[2]?.close();
    await waitFor(async () => {
      await settled();
      const users = await snapshot(room, watcherLogin.token);
      return users.find((u) => u.userId === ada.user.id)?.connections === 1;
    }, "two connections gone");
    assert.equal(pod(A).service.presence.pendingGraces, 0, "no grace period: nothing to emit");
    assert.equal(pod(B).service.presence.pendingGraces, 0);

    const lastClosed = Date.now();
    tabs[1]?.close();
    await watcher.stream.waitFor(() => watcher.of(ada.user.id).includes("offline"), 5_000);
    const offlineAt = watcher.at(ada.user.id, "offline") ?? 0;
    assert.ok(offlineAt - lastClosed >= GRACE_MS, `offline after ${offlineAt - lastClosed} ms`);
    await noGraceLeft();
    await marker(room, watcherLogin.token, watcher.stream);
    assert.deepEqual(watcher.of(ada.user.id), ["online", "offline"]);
    const metrics = await fetch(`${pod(A).url}/metrics`).then((r) => r.text());
    assert.match(metrics, /realtime_presence_events_total\{status="online"\} [1-9]/);
  });

  it("a reconnect within the grace period, to the other pod, produces no events at all", async () => {
    const room = "channel:reconnect";
    const watcherLogin = await pod(B).login("Watcher");
    const ada = await pod(A).login("Ada");
    const first = await connect(A, room, ada.token);
    await settled();
    const watcher = await watch(pod(B).url, room, watcherLogin.token);
    first.close();
    await waitFor(() => pod(A).service.presence.pendingGraces === 1, "grace period started");
    await connect(B, room, ada.token);
    // The grace period ends (pod A settles it and finds it cancelled) without an event.
    await noGraceLeft();
    await marker(room, watcherLogin.token, watcher.stream);
    assert.deepEqual(watcher.of(ada.user.id), []);
    assert.deepEqual(
      (await snapshot(room, watcherLogin.token)).find((u) => u.userId === ada.user.id)?.connections,
      1,
    );
  });
});

describe("presence across two pods on a 3-master Redis Cluster", () => {
  let cluster: TestRedisCluster;
  let pods: RunningService[] = [];
  before(async () => {
    cluster = await startRedisCluster(3);
    const env = {
      REDIS_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(","),
      REDIS_PREFIX: `prc_${randomBytes(4).toString("hex")}`,
      PRESENCE_GRACE_MS: "300",
    };
    pods = [await startService(env), await startService(env)];
  });
  after(async () => {
    await Promise.all(pods.map((p) => p.stop()));
    await cluster?.stop();
  });

  it("rooms on every master: one online and one offline per user, seen from the other pod", async () => {
    const [a, b] = pods as [RunningService, RunningService];
    const watcherLogin = await b.login("Watcher");
    const ada = await a.login("Ada");
    const rooms = Array.from({ length: 6 }, (_, i) => `channel:cluster_${i}`);
    const watchers = await Promise.all(rooms.map((room) => watch(b.url, room, watcherLogin.token)));
    const tabs = await Promise.all(
      rooms.flatMap((room) =>
        [a, b].map((pod) =>
          openHttp1(`${pod.url}/api/events?channel=${room}`, {
            authorization: `Bearer ${ada.token}`,
          }),
        ),
      ),
    );
    for (const w of watchers) {
      await w.stream.waitFor(() => w.of(ada.user.id).includes("online"), 5_000);
    }
    for (const tab of tabs) tab.close();
    for (const w of watchers) {
      await w.stream.waitFor(() => w.of(ada.user.id).includes("offline"), 5_000);
    }
    // Every decided event is published; a chat marker per room, once it arrived, proves that
    // whatever was published before it (a second online or offline) has arrived too.
    await Promise.all(pods.map((p) => p.service.presence.flush()));
    for (const [i, w] of watchers.entries()) {
      const content = `cluster marker ${i}`;
      const posted = await a.post("/api/chat/messages", watcherLogin.token, {
        channel: rooms[i],
        content,
      });
      assert.equal(posted.status, 204);
      await w.stream.waitFor(isMarker(content), 5_000);
      assert.deepEqual(w.of(ada.user.id), ["online", "offline"]);
      w.stream.close();
    }
  });
});

async function login(url: string, name: string) {
  const res = await fetch(`${url}/api/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  return (await res.json()) as { token: string; user: { id: string } };
}

describe("presence when a pod is SIGKILLed (real processes, default timings)", () => {
  let redis: TestRedis;
  const pods: Pod[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await stopPods(pods);
    await redis?.stop();
  });

  it("the other pod's subscribers see offline within 15 s", { timeout: 60_000 }, async (t) => {
    const env = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: `kill_${randomBytes(4).toString("hex")}`,
      JWT_SECRET: TEST_SECRET,
      NODE_ENV: "test",
      LOG_LEVEL: "warn",
    };
    const [doomed, survivor] = (await withPods(2, env)) as [Pod, Pod];
    pods.push(doomed, survivor);
    const room = "channel:crash";
    const watcherLogin = await login(survivor.url, "Watcher");
    const ada = await login(doomed.url, "Ada");
    const watcher = await watch(survivor.url, room, watcherLogin.token);
    const adaStream = await openHttp1(`${doomed.url}/api/events?channel=${room}`, {
      authorization: `Bearer ${ada.token}`,
    });
    await watcher.stream.waitFor(() => watcher.of(ada.user.id).includes("online"), 5_000);

    const killedAt = Date.now();
    await doomed.kill("SIGKILL"); // resolves once it exited
    await watcher.stream.waitFor(() => watcher.of(ada.user.id).includes("offline"), 15_000);
    const elapsed = (watcher.at(ada.user.id, "offline") ?? 0) - killedAt;
    assert.ok(elapsed <= 15_000, `offline ${elapsed} ms after SIGKILL`);
    assert.deepEqual(watcher.of(ada.user.id), ["online", "offline"]);
    adaStream.close();
    watcher.stream.close();
    t.diagnostic(`offline observed ${elapsed} ms after SIGKILL`);
  });
});
