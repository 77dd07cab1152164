/**
 * History and the handoff to the stream against the real service, in Node over real sockets
 * (the `eventsource` package, a bearer token). What the service published is known exactly
 * from `hub.publish` (each event's epoch and offset), so the ids a page carries and the events
 * a subscription gets are checked against that, not against the client's own reading of them.
 * Everything is awaited with a deadline, never slept for.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ChannelName, encodeCursor, type RealtimeEvent } from "@realtime/protocol";
import { type RunningService, startService } from "@realtime/testkit/service";
import { EventSource } from "eventsource";
import type { RealtimeClient } from "./client-api.ts";
import { withBearerToken } from "./event-source.ts";
import type { HistoryPage } from "./history-page.ts";
import { createRealtimeClient } from "./realtime-client.ts";
import { untilClient } from "./testing/until-client.ts";

const WAIT_MS = 10_000;

/** An event the test published: its content and the id a stream of its channel gives it. */
interface Published {
  readonly content: string;
  readonly id: string;
}

/** What a subscription got: `h` from the page, `l` live, in the order it got them. */
interface Heard {
  readonly from: "h" | "l";
  readonly content: string;
  readonly id: string | null;
}

describe("history and the handoff to the stream, against the real service", {
  timeout: 120_000,
}, () => {
  let svc: RunningService;
  let token: string;
  let userId: string;
  const clients: RealtimeClient[] = [];

  before(async () => {
    svc = await startService({ RATE_LIMIT_HISTORY_MAX: "0" });
    ({
      token,
      user: { id: userId },
    } = await svc.login("Ada"));
  });
  after(async () => {
    for (const client of clients) client.close();
    await svc?.stop();
  });

  function newClient(): RealtimeClient {
    const client = createRealtimeClient({
      url: svc.url,
      eventSource: withBearerToken(EventSource),
      getToken: () => token,
    });
    clients.push(client);
    return client;
  }

  async function publish(channel: string, content: string): Promise<Published> {
    const { epoch, offset } = await svc.service.hub.publish(channel as ChannelName, {
      type: "chat",
      content,
    });
    return { content, id: encodeCursor([[channel, { epoch, offset }]]) };
  }

  async function publishAll(channel: string, contents: readonly string[]): Promise<Published[]> {
    const published: Published[] = [];
    for (const content of contents) published.push(await publish(channel, content));
    return published;
  }

  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

  const until = (client: RealtimeClient, what: string, check: () => boolean) =>
    untilClient(client, what, check, WAIT_MS);

  /** Handlers that record the chat events of a subscription, from its page and live. */
  function recorder() {
    const heard: Heard[] = [];
    let page: HistoryPage | null = null;
    const handlers = {
      onHistory: (p: HistoryPage) => {
        page = p;
        for (const { id, event } of p.events) {
          if (event.type === "chat") heard.push({ from: "h", content: String(event.content), id });
        }
      },
      onEvent: (event: RealtimeEvent, id: string | null) => {
        if (event.type === "chat") heard.push({ from: "l", content: String(event.content), id });
      },
      onHistoryError: (error: unknown) => {
        throw error;
      },
    };
    return { heard, handlers, page: () => page };
  }

  it("history(limit) returns the channel's last events, oldest first, with the ids a stream of it carries", async () => {
    const room = "channel:h-last";
    const published = await publishAll(room, names("m", 12));
    const client = newClient();
    const page = await client.history(room, { limit: 5 });
    assert.equal(page.channel, room);
    assert.deepEqual(
      page.events.map(({ id, event }) => ({ content: event.content, id })),
      published.slice(7),
    );
    assert.equal(page.cursor, published[11]?.id, "the cursor is the last event's position");
    assert.equal(page.previous, published[7]?.id);
    // A bare room id names the same channel.
    assert.deepEqual(
      (await client.history("channel:h-last", { limit: 1 })).events,
      page.events.slice(4),
    );
  });

  it("before pages further back without overlap or hole, down to previous: null", async () => {
    const room = "channel:h-pages";
    const published = await publishAll(room, names("p", 12));
    const client = newClient();
    const pages: HistoryPage[] = [];
    let before: string | undefined;
    do {
      const page = await client.history(room, { limit: 5, ...(before && { before }) });
      pages.push(page);
      before = page.previous ?? undefined;
    } while (before !== undefined && pages.length < 10);
    assert.deepEqual(
      pages.map((p) => p.events.length),
      [5, 5, 2],
    );
    const all = pages.reverse().flatMap((p) => p.events);
    assert.deepEqual(
      all.map(({ id, event }) => ({ content: event.content, id })),
      published,
      "every event once, in order",
    );
    assert.equal(pages[0]?.previous, null);
  });

  it("a subscription from a page's cursor gets exactly what was published after the page, as the stream's first channel", async () => {
    const room = "channel:h-first";
    await publishAll(room, names("old", 4));
    const client = newClient();
    const page = await client.history(room, { limit: 10 });
    // Published between the read and the subscription: the stream must replay them.
    const between = await publishAll(room, names("between", 3));
    const { heard, handlers } = recorder();
    client.subscribe(room, handlers, { from: page.cursor });
    await until(client, "the stream", () => client.state === "open");
    const later = await publishAll(room, names("after", 2));
    await until(client, "the last event", () => heard.some((h) => h.content === "after1"));
    assert.deepEqual(
      heard.map(({ content, id }) => ({ content, id })),
      [...between, ...later],
    );
  });

  it("…and as a channel added to a stream open on another channel, which loses nothing either", async () => {
    const room = "channel:h-added";
    const mine = `user:${userId}`;
    const client = newClient();
    const own: string[] = [];
    client.subscribe(mine, {
      onEvent: (event) => {
        if (event.type === "chat") own.push(String(event.content));
      },
    });
    await until(client, "the stream", () => client.state === "open");
    await publishAll(mine, ["own0"]);
    await publishAll(room, names("old", 4));
    await until(client, "own0", () => own.length === 1);

    const page = await client.history(room, { limit: 3 });
    assert.deepEqual(
      page.events.map((e) => e.event.content),
      ["old1", "old2", "old3"],
    );
    const between = await publishAll(room, names("between", 3));
    await publishAll(mine, ["own1"]);
    const { heard, handlers } = recorder();
    client.subscribe(room, handlers, { from: page.cursor });
    await until(
      client,
      "the stream with both",
      () => client.state === "open" && client.channels.includes(room as ChannelName),
    );
    const later = await publishAll(room, names("after", 2));
    await publishAll(mine, ["own2"]);
    await until(client, "the last events", () => heard.length >= 5 && own.length >= 3);
    assert.deepEqual(
      heard.map(({ content, id }) => ({ content, id })),
      [...between, ...later],
    );
    assert.deepEqual(own, ["own0", "own1", "own2"]);
  });

  it("…and on a stream that already carried the channel past the page: it re-opens from the page's end, and the earlier subscription sees nothing twice", async () => {
    const room = "channel:h-rewind";
    const client = newClient();
    const earlier: string[] = [];
    const typed: string[] = [];
    client.subscribe(room, {
      onEvent: (event) => {
        if (event.type === "chat") earlier.push(String(event.content));
      },
    });
    client.on("chat", (event) => {
      if (event.channel === room) typed.push(String(event.content));
    });
    const reasons: string[] = [];
    client.onStateChange((change) => reasons.push(change.reason));
    await until(client, "the stream", () => client.state === "open");
    await publishAll(room, names("old", 3));
    const page = await client.history(room, { limit: 2 });
    // The stream brings these to the earlier subscription before the new one starts.
    const between = await publishAll(room, names("between", 3));
    await until(client, "the stream past the page", () => earlier.length === 6);

    const { heard, handlers } = recorder();
    client.subscribe(room, handlers, { from: page.cursor });
    await until(client, "the re-open", () => reasons.at(-1) === "opened" && reasons.length > 2);
    assert.deepEqual(reasons.slice(-2), ["history_handoff", "opened"]);
    const later = await publishAll(room, names("after", 2));
    await until(client, "the last event", () => heard.some((h) => h.content === "after1"));
    await until(client, "the earlier one's last", () => earlier.includes("after1"));
    assert.deepEqual(
      heard.map(({ content, id }) => ({ content, id })),
      [...between, ...later],
    );
    const all = [...names("old", 3), ...names("between", 3), ...names("after", 2)];
    assert.deepEqual(earlier, all, "the replay of between* did not reach it again");
    assert.deepEqual(typed, all, "nor the type handlers");
  });

  /**
   * Subscribes with `{ history: 5 }` while events are being published one after the other, and
   * checks that page and live events together are one unbroken run of what was published.
   */
  async function raceHistoryStart(client: RealtimeClient, room: string): Promise<void> {
    const published: Published[] = [];
    let publishing = true;
    let started: () => void = () => {};
    const someOut = new Promise<void>((resolve) => {
      started = resolve;
    });
    // Until told to stop (bounded): one event after the other, letting sockets run in between.
    const publisher = (async () => {
      for (let i = 0; publishing && i < 5000; i++) {
        published.push(await publish(room, `r${i}`));
        if (published.length === 8) started();
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await someOut;
    const { heard, handlers } = recorder();
    client.subscribe(room, handlers, { history: 5 });
    await until(
      client,
      "the page and live events",
      () => heard.filter((h) => h.from === "l").length >= 10,
    );
    publishing = false;
    await publisher;
    const last = published.at(-1)?.content;
    await until(client, "the last event published", () => heard.some((h) => h.content === last));

    const first = published.findIndex((p) => p.id === heard[0]?.id);
    assert.ok(first >= 0, "the first event heard was published");
    assert.deepEqual(
      heard.map(({ content, id }) => ({ content, id })),
      published.slice(first),
      "page, then live: every event once, in order",
    );
    assert.ok(
      heard.some((h) => h.from === "h"),
      "some events came from the page",
    );
  }

  it("{ history } while events keep coming: page and live are one unbroken run, as the first channel", async () => {
    await raceHistoryStart(newClient(), "channel:h-race-first");
  });

  it("{ history } while events keep coming: the same on a stream open on another channel", async () => {
    const client = newClient();
    client.subscribe(`user:${userId}`);
    await until(client, "the stream", () => client.state === "open");
    await raceHistoryStart(client, "channel:h-race-added");
  });

  it("{ history } while events keep coming: the same on a stream that carries the channel already, whose subscription sees each event once", async () => {
    const room = "channel:h-race-shared";
    const client = newClient();
    const earlier: string[] = [];
    client.subscribe(room, {
      onEvent: (event) => {
        if (event.type === "chat") earlier.push(String(event.content));
      },
    });
    await until(client, "the stream", () => client.state === "open");
    await raceHistoryStart(client, room);
    assert.equal(new Set(earlier).size, earlier.length, "no event twice for the earlier one");
    const numbers = earlier.map((content) => Number(content.slice(1)));
    assert.deepEqual(
      numbers,
      numbers.map((_, i) => (numbers[0] ?? 0) + i),
      "and none missing",
    );
  });
});
