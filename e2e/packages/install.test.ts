/**
 * The published packages as a user installs them: every package of `PUBLISHED` is built and
 * packed (`scripts/packages.ts`, the same path as `npm run pack:packages`), the tarballs are
 * installed into a new project outside the workspace, and that project
 * - imports them (ESM) and `require()`s them (CommonJS, Node's require(esm)) on Node 24 and 20;
 * - runs the `createRedisPublisher` example of `@realtime/redis`'s README, as installed, against
 *   the machine's Redis (127.0.0.1:6379, under a key prefix of its own, removed afterwards) and
 *   reads the events back with the installed `RedisBroker` — the Lua scripts must have shipped;
 * - type-checks strict TypeScript consumers: the browser packages under `nodenext` and `bundler`
 *   resolution without Node types, the server packages and `@realtime/server`'s README example
 *   under `nodenext`, and a CommonJS (`.cts`) consumer of all of them;
 * - has `publint` and `@arethetypeswrong/cli` find no problem in the tarballs.
 *
 * Nothing here is skipped: a missing Node 20, Redis, `npm` or linter fails the test. Set
 * `REALTIME_NODE20` to a Node 20 binary when none is on `PATH`, `REALTIME_REDIS_URL` to use
 * another Redis.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { delimiter, join } from "node:path";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { PUBLISHED, ROOT, run } from "../../scripts/packages.ts";
import { type ConsumerProject, installConsumer } from "./consumer-project.ts";

const require = createRequire(import.meta.url);
const TSC = require.resolve("typescript/bin/tsc");
const ATTW = join(ROOT, "node_modules", "@arethetypeswrong", "cli", "dist", "index.js");
/** The workspace's pinned Node 24 (the `node` dev dependency). */
const NODE_24 = join(ROOT, "node_modules", ".bin", "node");
/** The machine's shared Redis: only keys under this file's own prefixes are written and removed. */
const REDIS_URL = process.env.REALTIME_REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `rt_install_${randomBytes(4).toString("hex")}`;
/** What every published package claims in `engines`: the Node versions with require(esm). */
const ENGINES = "^20.19.0 || >=22.12.0";

let project: ConsumerProject | undefined;
let app = "";
let tarballs: readonly string[] = [];

before(async () => {
  // ioredis's declarations import `redis-errors`, whose types ioredis does not depend on: a
  // consumer that checks libraries (skipLibCheck false) installs them, as this one does.
  project = await installConsumer({
    name: "realtime-consumer",
    extras: ["react", "@types/react", "@types/node", "@types/redis-errors"],
  });
  ({ app, tarballs } = project);
});

after(async () => {
  await project?.remove();
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `*${PREFIX}*`, "COUNT", 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
});

/** Both Node versions the packages claim, each checked to be the one it says it is. */
async function nodes(): Promise<[node: string, major: string][]> {
  return [
    [NODE_24, "v24."],
    [await findNode20(), "v20."],
  ];
}

/** The first fenced block of `lang` under the `## heading` of a Markdown text. */
function codeBlock(markdown: string, heading: string, lang: string): string {
  const section = markdown.split(/^## /m).find((part) => part.startsWith(`${heading}\n`));
  assert.ok(section, `no "## ${heading}" section`);
  const block = new RegExp(`^\`\`\`${lang}\n([\\s\\S]*?)^\`\`\`$`, "m").exec(section);
  assert.ok(block?.[1], `no ${lang} block under "## ${heading}"`);
  return block[1];
}

/** Runs `check` on Node 24 and on Node 20, side by side. */
async function onEachNode(check: (node: string, major: string) => Promise<void>): Promise<void> {
  await Promise.all((await nodes()).map(([node, major]) => check(node, major)));
}

/** The first Node 20 on `PATH` outside the workspace's own `node_modules/.bin`. */
async function findNode20(): Promise<string> {
  const candidates = [
    process.env.REALTIME_NODE20,
    ...(process.env.PATH ?? "")
      .split(delimiter)
      .filter((dir) => dir && !dir.includes("node_modules"))
      .map((dir) => join(dir, "node")),
  ];
  for (const candidate of candidates) {
    if (!candidate || !existsSync(candidate)) continue;
    const version = (await run(candidate, ["--version"])).trim();
    if (version.startsWith("v20.")) return candidate;
  }
  assert.fail("no Node 20 on PATH: install one or set REALTIME_NODE20 to its binary");
}

const SMOKE = `
import { decodeCursor, encodeCursor, parseChannel } from "@realtime/protocol";
import { createRealtimeClient, withBearerToken } from "@realtime/client";
import { RealtimeProvider, useEventChannel } from "@realtime/react";
import { Hub, MemoryBroker } from "@realtime/server";
import { createRedisPublisher, RedisBroker } from "@realtime/redis";
import { realtime } from "@realtime/fastify";
import Fastify from "fastify";

const cursor = encodeCursor([["channel:general", { epoch: "e1", offset: 42 }]]);
const decoded = decodeCursor(cursor);
const offsets = decoded ? [...decoded.entries.values()].map((entry) => entry.offset) : null;
if (JSON.stringify(offsets) !== "[42]") throw new Error("cursor round trip: " + cursor);
if (!parseChannel("channel:general").ok || parseChannel("general").ok) throw new Error("parseChannel");
for (const fn of [createRealtimeClient, withBearerToken, RealtimeProvider, useEventChannel]) {
  if (typeof fn !== "function") throw new Error("not a function: " + String(fn));
}
const client = createRealtimeClient({
  url: "http://127.0.0.1:9",
  eventSource: () => { throw new Error("nothing subscribed: no stream may open"); },
});
client.close();

const broker = new MemoryBroker();
const hub = new Hub({ broker, history: broker });
const position = await hub.publish("channel:general", { type: "chat", text: "hi" });
const page = await broker.read("channel:general", 0, 10);
if (position.offset !== 1 || JSON.parse(page.messages[0].data).text !== "hi") {
  throw new Error("hub publish: " + JSON.stringify(page));
}
await hub.close();
await broker.close();
for (const fn of [createRedisPublisher, RedisBroker]) {
  if (typeof fn !== "function") throw new Error("not a function: " + String(fn));
}

// The plugin mounted in a fresh Fastify app, on this Node.
const app = Fastify();
await app.register(realtime, { authenticate: () => null });
const ready = await app.inject({ url: "/readyz" });
const anonymous = await app.inject({ url: "/api/events?channel=channel:general" });
if (ready.statusCode !== 200 || anonymous.json().code !== "RT_ERR_UNAUTHORIZED") {
  throw new Error("plugin: " + ready.body + " " + anonymous.body);
}
await app.close();
console.log(process.version);
`;

/** CommonJS consumers get the same modules through Node's require(esm). */
const SMOKE_CJS = `
"use strict";
const { parseChannel } = require("@realtime/protocol");
const { createRealtimeClient } = require("@realtime/client");
const { RealtimeProvider } = require("@realtime/react");
const { Hub, MemoryBroker, encodeMessage } = require("@realtime/server");
const { createRedisPublisher, RedisBroker, channelKeys } = require("@realtime/redis");
const { realtime } = require("@realtime/fastify");

if (!parseChannel("user:u_1").ok) throw new Error("parseChannel");
if (encodeMessage({ data: "x" }) !== "data: x\\n\\n") throw new Error("encodeMessage");
if (!channelKeys("p", "channel:a").history.startsWith("p:")) throw new Error("channelKeys");
for (const fn of [createRealtimeClient, RealtimeProvider, Hub, MemoryBroker, createRedisPublisher, RedisBroker, realtime]) {
  if (typeof fn !== "function") throw new Error("not a function: " + String(fn));
}
console.log(process.version);
`;

test("the installed packages import and run on Node 24 and Node 20", async () => {
  await writeFile(join(app, "smoke.mjs"), SMOKE);
  await onEachNode(async (node, major) => {
    const version = (await run(node, ["smoke.mjs"], { cwd: app })).trim();
    assert.ok(version.startsWith(major), `${node} ran as ${version}, expected ${major}x`);
  });
});

test("a CommonJS consumer require()s them on Node 24 and Node 20, without a warning", async () => {
  await writeFile(join(app, "smoke.cjs"), SMOKE_CJS);
  await onEachNode(async (node, major) => {
    // Only the version is printed: an ExperimentalWarning (or anything else) fails the match.
    const output = await run(node, ["smoke.cjs"], { cwd: app });
    assert.match(output, new RegExp(`^${major.replace(".", "\\.")}\\d+\\.\\d+\\n$`), output);
  });
  for (const name of PUBLISHED) {
    const manifest = JSON.parse(
      await readFile(join(app, "node_modules", "@realtime", name, "package.json"), "utf8"),
    ) as { engines?: { node?: string } };
    assert.equal(manifest.engines?.node, ENGINES, `${name}: engines.node`);
  }
});

const READ_BACK = `
import { RedisBroker } from "@realtime/redis";

const broker = new RedisBroker({ url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX, probeIntervalMs: 0 });
try {
  const events = {};
  for (const channel of ["user:u_42", "channel:orders"]) {
    const page = await broker.read(channel, 0, 10);
    events[channel] = page.messages.map((m) => ({ offset: m.offset, ...JSON.parse(m.data) }));
  }
  console.log(JSON.stringify(events));
} finally {
  await broker.close();
}
`;

test("the README's createRedisPublisher example publishes through the shared Redis, on Node 24 and 20", async () => {
  const readme = await readFile(
    join(app, "node_modules", "@realtime", "redis", "README.md"),
    "utf8",
  );
  await writeFile(
    join(app, "publisher-example.mjs"),
    codeBlock(readme, "Publish from any backend", "js"),
  );
  await writeFile(join(app, "read-back.mjs"), READ_BACK);
  await onEachNode(async (node, major) => {
    // A prefix per run: the example's idempotency key would make the second run a duplicate.
    const env = { ...process.env, REDIS_URL, REDIS_PREFIX: `${PREFIX}_${major.slice(1, 3)}` };
    const printed = await run(node, ["publisher-example.mjs"], { cwd: app, env });
    assert.equal(printed, "1 false 1\n", `${major}x: what the example printed`);
    const events = JSON.parse(await run(node, ["read-back.mjs"], { cwd: app, env })) as Record<
      string,
      { offset: number; type: string; channel: string }[]
    >;
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(events).map(([channel, list]) => [
          channel,
          list.map(({ offset, type, channel }) => ({ offset, type, channel })),
        ]),
      ),
      {
        "user:u_42": [{ offset: 1, type: "report_ready", channel: "user:u_42" }],
        "channel:orders": [{ offset: 1, type: "order_shipped", channel: "channel:orders" }],
      },
      `${major}x: the history the installed RedisBroker reads`,
    );
  });
});

const CONSUMER = `
import { type ChannelName, decodeCursor, parseChannel, type RealtimeEvent } from "@realtime/protocol";
import {
  createRealtimeClient,
  type EventSourceFactory,
  type RealtimeClient,
  type StateChange,
} from "@realtime/client";
import { RealtimeProvider, useConnectionState, useEventChannel } from "@realtime/react";
import { createElement, type ReactNode } from "react";

interface ChatMessage extends RealtimeEvent {
  type: "chat";
  content: string;
}

declare const eventSource: EventSourceFactory;
const client: RealtimeClient = createRealtimeClient({ url: "https://realtime.example.com", eventSource });
const chat: RealtimeClient<{ chat: ChatMessage }> = createRealtimeClient<{ chat: ChatMessage }>({
  url: "https://realtime.example.com",
  eventSource,
});
chat.on("chat", (message) => {
  const text: string = message.content;
  const channel: ChannelName = message.channel;
  console.log(text, channel);
});
client.onStateChange((change: StateChange) => console.log(change.from, change.to, change.reason));
const parsed = parseChannel("channel:general");
if (parsed.ok) client.subscribe(parsed.channel.name, { onEvent: (event) => console.log(event.type) });
const offsets: number[] = [...(decodeCursor("x")?.entries.values() ?? [])].map((e) => e.offset);
console.log(offsets);

function Room(): ReactNode {
  const { state } = useConnectionState();
  useEventChannel<ChatMessage>("channel:general", { onEvent: (message) => console.log(message.content) });
  return state;
}
export const app = createElement(RealtimeProvider, { client, children: createElement(Room) });
`;

test("a strict TypeScript consumer type-checks under nodenext and bundler resolution", async () => {
  await writeFile(join(app, "consumer.ts"), CONSUMER);
  const base = {
    strict: true,
    noEmit: true,
    skipLibCheck: false,
    target: "es2022",
    lib: ["es2022", "dom"],
    types: [],
    verbatimModuleSyntax: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
  };
  const resolutions = {
    nodenext: { module: "nodenext", moduleResolution: "nodenext" },
    bundler: { module: "preserve", moduleResolution: "bundler" },
  };
  await Promise.all(
    Object.entries(resolutions).map(async ([name, resolution]) => {
      const config = `tsconfig.${name}.json`;
      await writeFile(
        join(app, config),
        JSON.stringify({ compilerOptions: { ...base, ...resolution }, files: ["consumer.ts"] }),
      );
      await run(process.execPath, [TSC, "-p", config], { cwd: app });
    }),
  );
});

const SERVER_CONSUMER = `
import type { ChannelName } from "@realtime/protocol";
import {
  type Broker,
  type Connection,
  Hub,
  HubError,
  type HubErrorCode,
  type HubOptions,
  type HistoryStore,
  MemoryBroker,
  NodeHttpConnection,
  type PublishResult,
} from "@realtime/server";
import {
  createRedisPublisher,
  RedisBroker,
  type RedisBrokerOptions,
  type RedisPublisher,
} from "@realtime/redis";
import type { ServerResponse } from "node:http";

const options: RedisBrokerOptions = { url: "redis://127.0.0.1:6379", prefix: "app", probeIntervalMs: 0 };
const redisBroker = new RedisBroker(options);
const broker: Broker = redisBroker;
const history: HistoryStore = redisBroker;
const hubOptions: HubOptions = { broker, history, maxConnections: 100 };
const hub = new Hub(hubOptions);
const local = new Hub({ broker: new MemoryBroker() });

const publisher: RedisPublisher = createRedisPublisher(options);
const channel: ChannelName = "channel:orders";
const sent: Promise<PublishResult> = publisher.publish(channel, { type: "order_shipped", orderId: "o-1" });
const direct: Promise<PublishResult> = hub.sendToUser("u_1", { type: "notice" }, { idempotencyKey: "k" });
// @ts-expect-error a channel is "channel:<id>" or "user:<id>"
void publisher.publish("room:orders", { type: "x" });
// @ts-expect-error an event has a type
void publisher.sendToUser("u_1", { orderId: "o-1" });

export async function serve(res: ServerResponse): Promise<void> {
  try {
    await hub.open({ userId: "u_1", channels: [channel], cursor: null, connect: (): Connection => new NodeHttpConnection(res) });
  } catch (error) {
    const code: HubErrorCode | null = error instanceof HubError ? error.code : null;
    console.log(code);
  }
  console.log((await sent).offset, (await direct).duplicate, local.connectionCount);
  await Promise.all([hub.close(), local.close(), publisher.close(), redisBroker.close()]);
}
`;

/** A CommonJS TypeScript consumer: TypeScript's \`nodenext\` (5.8+) types require(esm) too. */
const CJS_CONSUMER = `
import protocol = require("@realtime/protocol");
import client = require("@realtime/client");
import server = require("@realtime/server");
import redis = require("@realtime/redis");

declare const realtime: client.RealtimeClient;
const publisher: redis.RedisPublisher = redis.createRedisPublisher({ prefix: "app" });
const hub: server.Hub = new server.Hub({ broker: new server.MemoryBroker() });
export = [protocol.parseChannel("user:u_1").ok, client.createRealtimeClient, realtime, hub, publisher];
`;

test("strict TypeScript consumers of the server packages type-check, ESM and CommonJS", async () => {
  const serverReadme = await readFile(
    join(app, "node_modules", "@realtime", "server", "README.md"),
    "utf8",
  );
  await writeFile(join(app, "server-consumer.ts"), SERVER_CONSUMER);
  await writeFile(join(app, "server-example.ts"), codeBlock(serverReadme, "Serve a stream", "ts"));
  await writeFile(join(app, "cjs-consumer.cts"), CJS_CONSUMER);
  await writeFile(
    join(app, "tsconfig.server.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        target: "es2022",
        lib: ["es2022"],
        types: ["node"],
        module: "nodenext",
        moduleResolution: "nodenext",
        verbatimModuleSyntax: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
      },
      files: ["server-consumer.ts", "server-example.ts", "cjs-consumer.cts"],
    }),
  );
  await run(process.execPath, [TSC, "-p", "tsconfig.server.json"], { cwd: app });
});

test("publint and arethetypeswrong find no problem in the tarballs", async () => {
  assert.equal(tarballs.length, PUBLISHED.length);
  const lint = async (tarball: string): Promise<void> => {
    const data = await readFile(tarball);
    const tarballBuffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const { messages, pkg } = await publint({
      pack: { tarball: tarballBuffer },
      level: "suggestion",
      strict: true,
    });
    assert.deepEqual(
      messages.map((message) => formatMessage(message, pkg, { color: false })),
      [],
      `publint: ${tarball}`,
    );
    // ESM only, and require()able: Node's require(esm) (every Node of `engines`) and TypeScript's
    // `nodenext` load it from CommonJS (the tests above prove both), so the one rule that says a
    // CommonJS consumer cannot is the one ignored; every other node16 and bundler rule applies.
    await run(process.execPath, [
      ATTW,
      tarball,
      "--profile",
      "node16",
      "--ignore-rules",
      "cjs-resolves-to-esm",
      "--no-color",
    ]);
  };
  await Promise.all(tarballs.map(lint));
});

test("each installed package carries its README and LICENSE, and no tests or ./testing entry", async () => {
  for (const name of PUBLISHED) {
    const dir = join(app, "node_modules", "@realtime", name);
    assert.ok(existsSync(join(dir, "README.md")), `${name}: README.md`);
    assert.ok(existsSync(join(dir, "LICENSE")), `${name}: LICENSE`);
    const sources = await readdir(join(dir, "src"), { recursive: true });
    assert.deepEqual(
      sources.filter((file) => file.endsWith(".test.ts") || file.startsWith("testing")),
      [],
      `${name}: tests or test doubles packed`,
    );
    const manifest = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
      exports: Record<string, unknown>;
    };
    assert.deepEqual(Object.keys(manifest.exports), [".", "./package.json"], `${name}: exports`);
  }
});
