/**
 * Multi-pod scenarios shared by the single-Redis and the Redis Cluster integration tests: the
 * same assertions, whatever carries the events between the pods.
 */
import assert from "node:assert/strict";
import { login, postJson, serviceToken } from "./load/publisher.ts";
import type { Pod } from "./pods.ts";
import { checkChannel, perfect, StreamClient } from "./stream/index.ts";

export interface CrossPodOptions {
  /** Channel names (`channel:<id>`). */
  readonly channels: readonly string[];
  /** Total chat messages. */
  readonly events: number;
  /** Concurrent posters, each posting its share in order. */
  readonly posters: number;
}

/**
 * Streams on pod `b` (one with a token pod `a` issued), chat posted on pod `a` by concurrent
 * posters: every stream gets every event of its channels exactly once, offsets 1, 2, 3, … per
 * channel, and each poster's messages in the order it posted them.
 */
export async function crossPodChat(a: Pod, b: Pod, options: CrossPodOptions): Promise<void> {
  const { channels, events, posters } = options;
  const fromA = await login(a.url, "Ada");
  const fromB = await login(b.url, "Bo");
  const all = new StreamClient(fromA.token, channels);
  const some = new StreamClient(fromB.token, channels.slice(0, 2));
  try {
    assert.equal(await all.connect(b.url), 200, "a token from pod A opens a stream on pod B");
    assert.equal(await some.connect(b.url), 200);

    const tokens = await Promise.all(
      Array.from({ length: posters }, (_, p) => login(a.url, `Poster ${p}`)),
    );
    const sent = new Map<string, string[]>(channels.map((c) => [c, []]));
    const perPoster = Math.ceil(events / posters);
    await Promise.all(
      tokens.map(async ({ token }, p) => {
        for (let i = 0; i < perPoster && p * perPoster + i < events; i++) {
          const channel = channels[(p + i) % channels.length] as string;
          const content = `p${p}-${i}`;
          const { status, body } = await postJson(a.url, "/api/chat/messages", token, {
            channel,
            content,
          });
          assert.equal(status, 204, `chat post on A: ${status} ${body}`);
          sent.get(channel)?.push(content);
        }
      }),
    );

    const counts = new Map([...sent].map(([c, list]) => [c, list.length]));
    assert.equal(
      [...counts.values()].reduce((s, n) => s + n, 0),
      events,
    );
    await all.untilCounts(counts, 30_000, "chat");
    const someCounts = new Map(channels.slice(0, 2).map((c) => [c, counts.get(c) ?? 0]));
    await some.untilCounts(someCounts, 30_000, "chat");

    for (const client of [all, some]) {
      assert.deepEqual(client.strays, []);
      for (const channel of client.channels) {
        const log = client.log.get(channel);
        assert.ok(log);
        const check = checkChannel(log, "chat", counts.get(channel) ?? 0);
        assert.deepEqual(check, perfect(check), `${channel}: ${JSON.stringify(check)}`);
        // Exactly the contents posted, and each poster's in the order it posted them.
        const contents = log.events
          .filter((e) => e.json.type === "chat")
          .map((e) => String(e.json.content));
        assert.deepEqual([...contents].sort(), [...(sent.get(channel) ?? [])].sort());
        const lastByPoster = new Map<string, number>();
        for (const content of contents) {
          const [poster, index] = content.split("-") as [string, string];
          const previous = lastByPoster.get(poster) ?? -1;
          assert.ok(Number(index) > previous, `${channel}: ${content} after ${poster}-${previous}`);
          lastByPoster.set(poster, Number(index));
        }
      }
    }
  } finally {
    all.close();
    some.close();
  }
}

/**
 * Idempotent publishes across pods: each round posts one `Idempotency-Key` to pod A and pod B
 * at once, twice each (`POST /api/publish`). Exactly one of the four is published — it alone
 * lacks `Idempotent-Replayed: true` — every answer is 202 with the same offset, and a stream on
 * pod B receives exactly one event per key, at that offset.
 */
export async function idempotentAcrossPods(a: Pod, b: Pod, rounds = 10): Promise<void> {
  const channel = "channel:idempotent";
  const token = await serviceToken();
  const watcher = await login(b.url, "Watcher");
  const stream = new StreamClient(watcher.token, [channel]);
  try {
    assert.equal(await stream.connect(b.url), 200);
    const offsets = new Map<string, number>();
    for (let round = 0; round < rounds; round++) {
      const message = `round-${round}`;
      const headers = { "idempotency-key": `retry-${message}` };
      const body = { channel, event: { type: "tick", message } };
      const answers = await Promise.all(
        [a, b, a, b].map((pod) => postJson(pod.url, "/api/publish", token, body, headers)),
      );
      const what = `${message}: ${JSON.stringify(answers.map((r) => [r.status, r.body]))}`;
      assert.deepEqual(
        answers.map((r) => r.status),
        [202, 202, 202, 202],
        what,
      );
      const published = answers.filter((r) => r.headers["idempotent-replayed"] !== "true");
      assert.equal(published.length, 1, `exactly one publish: ${what}`);
      const answered = new Set(
        answers.map((r) => (JSON.parse(r.body) as { offset: number }).offset),
      );
      assert.equal(answered.size, 1, `one offset in every answer: ${what}`);
      offsets.set(message, [...answered][0] as number);
    }
    // A last event: once it is on the stream, a duplicate of any round would be too.
    const end = await postJson(a.url, "/api/publish", token, {
      channel,
      event: { type: "tick", message: "end" },
    });
    assert.equal(end.status, 202);
    const log = stream.log.get(channel);
    assert.ok(log);
    await stream.until(
      () => log.events.some((e) => e.json.message === "end"),
      10_000,
      () => `the last event; ${stream.describe()}`,
    );
    const ticks = log.events.filter((e) => e.json.type === "tick");
    assert.deepEqual(
      ticks.map((e) => String(e.json.message)),
      [...offsets.keys(), "end"],
      "one event per key, in order",
    );
    for (const event of ticks.slice(0, -1)) {
      assert.equal(event.offset, offsets.get(String(event.json.message)), "at the answered offset");
    }
    assert.deepEqual(log.resets, []);
  } finally {
    stream.close();
  }
}

/**
 * Ref-counted per-channel subscriptions, seen from Redis: `count(channel)` (PUBSUB NUMSUB or
 * SHARDNUMSUB on the slot owner) is 0 until a stream of the channel opens on pod `b`, 1 while
 * one or two are open there (publishing through pod `a` does not subscribe `a`), 0 once the
 * last one closed.
 */
export async function subscriberCounts(
  a: Pod,
  b: Pod,
  channel: string,
  count: (channel: string) => Promise<number>,
): Promise<void> {
  const { token } = await login(a.url, "Numsub");
  const first = new StreamClient(token, [channel]);
  const second = new StreamClient(token, [channel]);
  try {
    assert.equal(await count(channel), 0, "no pod subscribes before any stream");
    assert.equal(await first.connect(b.url), 200);
    assert.equal(await count(channel), 1, "pod B subscribed while its stream is open");
    for (let i = 0; i < 3; i++) {
      const { status } = await postJson(a.url, "/api/chat/messages", token, {
        channel,
        content: `n${i}`,
      });
      assert.equal(status, 204);
    }
    await first.untilCounts(new Map([[channel, 3]]), 10_000, "chat");
    assert.equal(await count(channel), 1, "publishing through pod A does not subscribe pod A");
    assert.equal(await second.connect(b.url), 200);
    assert.equal(await count(channel), 1, "a second local stream shares the subscription");
    second.close();
    await until(async () => (await connections(b)) === 1, 10_000, "pod B sees the close");
    assert.equal(await count(channel), 1, "still subscribed for the stream left");
    first.close();
    await until(async () => (await count(channel)) === 0, 10_000, "unsubscribed after the last");
    assert.equal(await connections(b), 0);
  } finally {
    first.close();
    second.close();
  }
}

/** `sse_connections_total` of a pod, from /metrics. */
export async function connections(pod: Pod): Promise<number> {
  const response = await fetch(`${pod.url}/metrics`);
  const text = await response.text();
  const match = /^sse_connections_total (\d+)/m.exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

/** Polls `check` (every 20 ms) until it is true; rejects naming `what` after `timeoutMs`. */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Polls a pod's `/readyz` back to back (every ~10 ms) and keeps the transitions: `[200, 503,
 * 200]` means it went unready and came back.
 */
export class ReadyWatch {
  readonly transitions: number[] = [];
  /** When each transition was seen (ms, `performance.now()`). */
  readonly at: number[] = [];
  #running = true;
  readonly #done: Promise<void>;

  constructor(pod: Pod) {
    this.#done = (async () => {
      while (this.#running) {
        const status = await pod.readyz();
        if (this.transitions.at(-1) !== status) {
          this.transitions.push(status);
          this.at.push(performance.now());
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
  }

  /** Whether the pod was seen unready and, after that, ready again. */
  recovered(): boolean {
    const down = this.transitions.indexOf(503);
    return down >= 0 && this.transitions.indexOf(200, down) > down;
  }

  /** How long the first unready spell lasted, in ms (NaN if there was none). */
  unreadyMs(): number {
    const down = this.transitions.indexOf(503);
    const up = this.transitions.indexOf(200, down);
    return down >= 0 && up > down
      ? (this.at[up] as number) - (this.at[down] as number)
      : Number.NaN;
  }

  async stop(): Promise<number[]> {
    this.#running = false;
    await this.#done;
    return this.transitions;
  }
}
