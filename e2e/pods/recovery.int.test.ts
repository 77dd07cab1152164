/**
 * Failures under load, with real service processes and redis-server processes this file
 * starts itself (never the shared 6379): the pods' subscriber connections killed while events
 * flow, Redis restarted empty, a pod SIGKILLed with clients on it. Every client ends with what
 * it is owed: every event exactly once and in order, or — when history is really gone —
 * exactly one `reset` per channel, then live events.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { channelKeys } from "@realtime/redis";
import {
  assertComplete,
  login,
  postJson,
  publishLoad,
  serviceToken,
  topOffsets,
} from "@realtime/testkit/load";
import { acquireLoadLock } from "@realtime/testkit/load-lock";
import { type Pod, stopPods, withPods } from "@realtime/testkit/pods";
import { redisCli, startRedis, type TestRedis } from "@realtime/testkit/redis";
import { ReadyWatch, until } from "@realtime/testkit/scenarios";
import { type ChannelLog, checkChannel, perfect, StreamClient } from "@realtime/testkit/stream";

describe("subscriber connections killed, a pod SIGKILLed", { timeout: 180_000 }, () => {
  let redis: TestRedis;
  let a: Pod;
  let b: Pod;
  let token: string;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    redis = await startRedis();
    [a, b] = (await withPods(2, { REDIS_URL: redis.url })) as [Pod, Pod];
    token = await serviceToken();
  });
  after(async () => {
    await stopPods([a, b]);
    await redis?.stop();
    release?.();
  });

  it("CLIENT KILL TYPE pubsub mid-load (800 events/s offered): /readyz 503 then 200 by itself, 0 gaps, 0 duplicates", async () => {
    const channels = ["channel:k1", "channel:k2", "channel:k3"];
    const user = await login(a.url, "Killer");
    const clients = [
      new StreamClient(user.token, ["channel:k1", "channel:k2"]),
      new StreamClient(user.token, ["channel:k1", "channel:k3"]),
      new StreamClient(user.token, channels),
    ];
    const watches = [new ReadyWatch(a), new ReadyWatch(b)];
    try {
      assert.equal(await clients[0]?.connect(b.url), 200);
      assert.equal(await clients[1]?.connect(a.url), 200);
      assert.equal(await clients[2]?.connect(b.url), 200);
      // The load runs until 100 events more than at the kill have reached a client: the kill
      // falls in the middle of it however fast this machine publishes (a fixed 3.5 s of load
      // left that to the machine's speed). The duration is only a backstop.
      const enough = new AbortController();
      const load = publishLoad({
        podUrls: () => [a.url, b.url],
        token,
        channels,
        rate: 800,
        durationMs: 60_000,
        signal: enough.signal,
      });
      const first = clients[0] as StreamClient;
      try {
        // Kill once events are flowing.
        await first.until(
          () => first.count("channel:k1", "tick") >= 200,
          30_000,
          () => "events flowing",
        );
      } catch (error) {
        enough.abort();
        throw error;
      }
      const seenAtKill = first.count("channel:k1", "tick");
      try {
        const killed = Number(await redisCli(redis.port, "CLIENT", "KILL", "TYPE", "pubsub"));
        assert.ok(killed >= 2, `killed ${killed} subscriber connections (one per pod)`);
        await until(() => watches.every((w) => w.recovered()), 15_000, "both pods ready again");
        console.log(
          `unready after CLIENT KILL: ${watches.map((w) => `${w.unreadyMs().toFixed(0)} ms`)}`,
        );
        await first.until(
          () => first.count("channel:k1", "tick") >= seenAtKill + 100,
          30_000,
          () => `100 events after the kill; ${first.describe()}`,
        );
      } finally {
        enough.abort();
      }
      const published = await load;
      // Unready once (503), then ready again by itself; never a flap back.
      for (const t of await Promise.all(watches.map((w) => w.stop()))) {
        assert.deepEqual(t, [200, 503, 200], `/readyz went ${t}`);
      }
      assert.deepEqual([...published.failures], [], "every publish accepted");
      // The kill fell in the middle of the load (the rate reached depends on the machine's
      // load, so it is reported, not asserted): k1 kept getting events after it.
      console.log(`published ${published.rate.toFixed(0)} events/s`);
      const onK1 = published.accepted.get("channel:k1")?.size ?? 0;
      assert.ok(onK1 >= seenAtKill + 100, `k1: ${seenAtKill} seen at the kill, ${onK1} in all`);
      await assertComplete(clients, published);
      for (const client of clients) assert.deepEqual(client.statuses, [200], "never reconnected");
    } finally {
      for (const client of clients) client.close();
      await Promise.all(watches.map((w) => w.stop()));
    }
  });

  it("a pod SIGKILLed with clients on it: they resume on the other pod with 0 gaps", async () => {
    const channels = ["channel:s1", "channel:s2", "channel:s3", "channel:s4"];
    const user = await login(b.url, "Survivor");
    const clients = Array.from(
      { length: 8 },
      (_, i) => new StreamClient(user.token, [channels[i % 4], channels[(i + 1) % 4]] as string[]),
    );
    try {
      // Six clients on the pod that dies, two on the one that survives.
      for (const [i, client] of clients.entries()) {
        assert.equal(await client.connect(i < 6 ? a.url : b.url), 200);
      }
      const load = publishLoad({
        podUrls: () => [b.url],
        token,
        channels,
        rate: 600,
        durationMs: 3_000,
      });
      const victims = clients.slice(0, 6);
      await until(
        () => victims.every((c) => c.count(c.channels[0] as string, "tick") >= 50),
        10_000,
        "flow",
      );
      const exit = await a.kill("SIGKILL");
      assert.equal(exit.signal, "SIGKILL");
      // Each client notices its stream ended and reconnects to pod B with its last cursor.
      await Promise.all(
        victims.map(async (client) => {
          await client.until(
            () => !client.open,
            5_000,
            () => "stream on the dead pod ended",
          );
          assert.equal(await client.connect(b.url), 200);
        }),
      );
      const published = await load;
      assert.deepEqual([...published.failures], []);
      await assertComplete(clients, published);
      for (const client of victims) assert.deepEqual(client.statuses, [200, 200]);

      // The pod comes back on its port, and a client can move back to it with its cursor.
      await a.restart();
      const back = clients[0] as StreamClient;
      assert.equal(await back.connect(a.url), 200);
      const more = await publishLoad({
        podUrls: () => [a.url, b.url],
        token,
        channels: back.channels,
        rate: 200,
        durationMs: 10_000,
        maxEvents: 20,
      });
      await back.untilOffsets(topOffsets(more), 10_000);
      for (const channel of back.channels) {
        const log = back.log.get(channel);
        assert.ok(log);
        const all = new Map([
          ...(published.accepted.get(channel) ?? []),
          ...(more.accepted.get(channel) ?? []),
        ]);
        const check = checkChannel(log, "tick", all);
        assert.deepEqual(
          check,
          perfect(check),
          `back on pod A, ${channel}: ${JSON.stringify(check)}`,
        );
      }
    } finally {
      for (const client of clients) client.close();
    }
  });
});

describe("Redis restarted empty while streams are open", { timeout: 180_000 }, () => {
  let redis: TestRedis;
  let a: Pod;
  let b: Pod;
  let token: string;
  let release: (() => void) | undefined;
  before(async () => {
    release = await acquireLoadLock();
    redis = await startRedis();
    [a, b] = (await withPods(2, { REDIS_URL: redis.url })) as [Pod, Pod];
    token = await serviceToken();
  });
  after(async () => {
    await stopPods([a, b]);
    await redis?.stop();
    release?.();
  });

  /** Publishes one tick per channel; resolves with the offset each was given. */
  const publishEach = async (channels: readonly string[], via: Pod) => {
    const offsets = new Map<string, number>();
    for (const channel of channels) {
      const { status, body } = await postJson(via.url, "/api/publish", token, {
        channel,
        event: { type: "tick", message: `${channel}#last` },
      });
      assert.equal(status, 202, `${channel}: ${status} ${body}`);
      offsets.set(channel, (JSON.parse(body) as { offset: number }).offset);
    }
    return offsets;
  };

  it("pods recover by themselves, /readyz tells the truth, one reset per channel, old cursors too", async () => {
    const all = ["channel:r1", "channel:r2", "channel:r3"];
    const both = () => [a.url, b.url];
    const user = await login(a.url, "Restart");
    const r1 = new StreamClient(user.token, ["channel:r1", "channel:r2"]);
    const r2 = new StreamClient(user.token, ["channel:r1", "channel:r3"]);
    const later: StreamClient[] = [];
    try {
      assert.equal(await r1.connect(b.url), 200);
      assert.equal(await r2.connect(a.url), 200);
      // The old epoch: 60 events, all delivered.
      const old = await publishLoad({
        podUrls: both,
        token,
        channels: all,
        rate: 300,
        durationMs: 10_000,
        maxEvents: 60,
      });
      assert.deepEqual([...old.failures], []);
      for (const client of [r1, r2]) await client.untilOffsets(topOffsets(old), 10_000);
      const oldCursors = [r1.lastEventId, r2.lastEventId];

      // Redis goes away; publishers keep going through both pods all along (what they get
      // accepted from now on is in the new, empty Redis: the new epoch).
      await redis.kill();
      const stop = new AbortController();
      const during = publishLoad({
        podUrls: both,
        token,
        channels: all,
        rate: 300,
        durationMs: 60_000,
        signal: stop.signal,
      });
      await until(
        async () => (await a.readyz()) === 503 && (await b.readyz()) === 503,
        10_000,
        "both pods unready while Redis is down",
      );
      const probe = new StreamClient(user.token, ["channel:r1"]);
      assert.equal(await probe.connect(b.url), 503, "no new stream while the broker is down");
      for (let i = 0; i < 3; i++) {
        assert.equal(await a.readyz(), 503, "still unready");
        assert.equal(await b.readyz(), 503, "still unready");
      }

      // It comes back empty on the same port: the pods recover by themselves.
      await redis.restart();
      await until(
        async () => (await a.readyz()) === 200 && (await b.readyz()) === 200,
        20_000,
        "both pods ready again",
      );
      const after = await publishLoad({
        podUrls: both,
        token,
        channels: all,
        rate: 300,
        durationMs: 10_000,
        maxEvents: 60,
      });
      stop.abort();
      const meanwhile = await during;
      assert.deepEqual([...after.failures], []);
      assert.deepEqual(
        [...meanwhile.failures.keys()].filter((status) => status !== 503),
        [],
        "a publish Redis did not take is a 503",
      );
      assert.ok((meanwhile.failures.get(503) ?? 0) > 0, "publishes failed while Redis was down");
      const fresh = new Map(
        all.map((c) => [
          c,
          new Map([...(meanwhile.accepted.get(c) ?? []), ...(after.accepted.get(c) ?? [])]),
        ]),
      );
      const freshTops = new Map(
        [...fresh].map(([c, offsets]) => [c, Math.max(0, ...offsets.keys())]),
      );

      for (const [i, client] of [r1, r2].entries()) {
        await client.until(
          () =>
            client.channels.every(
              (c) =>
                client.log.get(c)?.resets.length === 1 &&
                client.lastOffset(c) >= (freshTops.get(c) ?? 0),
            ),
          15_000,
          () => client.describe(),
        );
        assert.deepEqual(client.statuses, [200], "the stream stayed open throughout");
        for (const channel of client.channels) {
          const log = client.log.get(channel) as ChannelLog;
          assert.deepEqual(log.resets, ["epoch_changed"], `client ${i} ${channel}: one reset`);
          // Before the reset: the old epoch, complete. After it: the new epoch from offset 1,
          // complete — nothing published to the new Redis is skipped.
          const at = log.resetAt[0] as number;
          const before = { ...log, events: log.events.slice(0, at), resets: [] };
          const since = { ...log, events: log.events.slice(at), resets: [], start: 0 };
          assert.equal(new Set(before.events.map((e) => e.epochTag)).size, 1, "one old epoch");
          assert.equal(new Set(since.events.map((e) => e.epochTag)).size, 1, "one new epoch");
          assert.notEqual(before.events[0]?.epochTag, since.events[0]?.epochTag);
          const oldCheck = checkChannel(before, "tick", old.accepted.get(channel) ?? new Map());
          assert.deepEqual(oldCheck, perfect(oldCheck), `client ${i} ${channel} old epoch`);
          const newCheck = checkChannel(since, "tick", fresh.get(channel) ?? new Map());
          assert.deepEqual(
            newCheck,
            perfect(newCheck),
            `client ${i} ${channel} new epoch: ${JSON.stringify(newCheck)} ${JSON.stringify(
              since.events.slice(0, 5).map((e) => e.offset),
            )}`,
          );
        }
      }

      // Clients that come back with a cursor from before the restart, on either pod, header or
      // query: exactly one reset per channel, then live; never a 5xx.
      for (const [i, cursor] of oldCursors.entries()) {
        for (const [pod, inQuery] of [
          [a, false],
          [b, true],
        ] as const) {
          const client = new StreamClient(user.token, (i === 0 ? r1 : r2).channels);
          later.push(client);
          const status = await client.connect(pod.url, { cursor, cursorInQuery: inQuery });
          assert.equal(status, 200, `old cursor on ${pod.url}: ${client.lastErrorBody}`);
        }
      }
      const live = await publishEach(all, a);
      for (const client of later) {
        // The event just published, at its position in the new epoch (after the reset).
        await client.untilOffsets(live, 10_000);
        for (const channel of client.channels) {
          const log = client.log.get(channel) as ChannelLog;
          const check = checkChannel(log, "tick", 1);
          assert.deepEqual(
            check,
            { ...perfect(check), resets: ["epoch_changed"] },
            `old cursor, ${channel}: one reset, then live (no replay): ${JSON.stringify(check)}`,
          );
        }
      }
      // A client that got its reset and reconnects with its new cursor resumes without one.
      r1.close();
      assert.equal(await r1.connect(a.url), 200);
      const resumed = await publishEach(all, b);
      // Wait for the exact positions of the events just published. (Counting "tick" events
      // over the whole log, old epoch included, was satisfied before the last one arrived, and
      // the check then ran early: issue 15.)
      await r1.untilOffsets(resumed, 10_000);
      for (const channel of r1.channels) {
        const log = r1.log.get(channel) as ChannelLog;
        assert.deepEqual(log.resets, ["epoch_changed"], "no new reset");
        const at = log.resetAt[0] as number;
        const check = checkChannel(
          { ...log, events: log.events.slice(at), start: 0 },
          "tick",
          (fresh.get(channel)?.size ?? 0) + 2,
        );
        assert.deepEqual(
          check,
          { ...perfect(check), resets: ["epoch_changed"] },
          `${channel}: resumed`,
        );
      }
    } finally {
      for (const client of [r1, r2, ...later]) client.close();
    }
  });
});

describe("Redis loses a tail it had acknowledged", { timeout: 120_000 }, () => {
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
    await stopPods([a, b]);
    await redis?.stop();
  });

  /** Publishes `n` ticks; resolves with the offset the last one was given. */
  const publish = async (channel: string, n: number) => {
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const { status, body } = await postJson(a.url, "/api/publish", token, {
        channel,
        event: { type: "tick", message: `${channel}#${i}` },
      });
      assert.equal(status, 202, body);
      offset = (JSON.parse(body) as { offset: number }).offset;
    }
    return offset;
  };

  it("the pod that delivered past it moves the channel to a new epoch: a reset, then every new event", async () => {
    const channel = "channel:tail";
    const meta = channelKeys("realtime", channel).meta;
    const history = channelKeys("realtime", channel).history;
    const user = await login(b.url, "Tail");
    const client = new StreamClient(user.token, [channel]);
    try {
      assert.equal(await client.connect(b.url), 200);
      // Everything the channel will hold before the loss: the 20 ticks (the last at its
      // offset) and the user's own presence `online`, which pod B publishes on the room too.
      const last = await publish(channel, 20);
      await client.until(
        () => client.count(channel, "presence") === 1 && client.lastOffset(channel) >= last,
        10_000,
        () => client.describe(),
      );
      const top = client.lastOffset(channel);
      const oldEpoch = await redisCli(redis.port, "HGET", meta, "epoch");

      // What a restart from an older snapshot, or a replica promoted before it had the last
      // writes, leaves behind: the channel five events back in the same epoch, its last five
      // gone. The restart drops the pods' subscriber connections; their reconnect check finds
      // the channel below what pod B delivered. Without a new epoch, the next five events
      // would reuse those offsets and pod B would drop them as duplicates.
      await redisCli(redis.port, "HSET", meta, "offset", String(top - 5));
      for (let offset = top - 4; offset <= top; offset++) {
        await redisCli(redis.port, "XDEL", history, `${offset}-0`);
      }
      await redisCli(redis.port, "CLIENT", "KILL", "TYPE", "pubsub");
      await until(
        async () => (await redisCli(redis.port, "HGET", meta, "epoch")) !== oldEpoch,
        15_000,
        "pod B gives the channel a new epoch",
      );
      await until(
        async () => (await a.readyz()) === 200 && (await b.readyz()) === 200,
        15_000,
        "both pods ready",
      );

      // The last of them at its offset in the new epoch. (Before, the wait was "one reset and
      // an offset ≥ 5", which the old epoch's last offset met as soon as the reset came, before
      // any new event: the checks below could run before the events they check.)
      const newTop = await publish(channel, 5);
      await client.until(
        () =>
          (client.log.get(channel)?.resets.length ?? 0) === 1 &&
          client.lastOffset(channel) >= newTop,
        10_000,
        () => client.describe(),
      );
      const log = client.log.get(channel) as ChannelLog;
      assert.deepEqual(log.resets, ["epoch_changed"]);
      assert.deepEqual(client.statuses, [200], "the stream stayed open");
      const at = log.resetAt[0] as number;
      const ticks = (events: readonly { json: Record<string, unknown> }[]) =>
        events.filter((e) => e.json.type === "tick").map((e) => e.json.message);
      const before = log.events.slice(0, at);
      const since = log.events.slice(at);
      assert.deepEqual(
        before.map((e) => e.offset),
        Array.from({ length: top }, (_, i) => i + 1),
        "the old epoch as delivered",
      );
      assert.deepEqual(
        since.map((e) => e.offset),
        Array.from({ length: since.length }, (_, i) => i + 1),
        "the new epoch from offset 1, no gap",
      );
      assert.notEqual(since[0]?.epochTag, before[0]?.epochTag);
      assert.deepEqual(
        ticks(since),
        Array.from({ length: 5 }, (_, i) => `${channel}#${i}`),
        "every event published after the loss",
      );
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      assert.match(metrics, /realtime_broker_went_back_total [1-9]/);
    } finally {
      client.close();
    }
  });
});
