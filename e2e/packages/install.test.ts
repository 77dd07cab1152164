/**
 * The published packages as a user installs them: `@realtime/protocol`, `@realtime/client` and
 * `@realtime/react` are built and packed (`scripts/packages.ts`, the same path as
 * `npm run pack:packages`), the tarballs are installed into a new project outside the
 * workspace, and that project imports them on Node 24 and Node 20, type-checks a strict
 * TypeScript consumer under `nodenext` and `bundler` resolution, and has `publint` and
 * `@arethetypeswrong/cli` (ESM-only profile) find no problem in the tarballs.
 *
 * Nothing here is skipped: a missing Node 20, `npm` or linter fails the test. Set
 * `REALTIME_NODE20` to a Node 20 binary when none is on `PATH`.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, test } from "node:test";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { npmEnv, PUBLISHED, packPackages, ROOT, run } from "../../scripts/packages.ts";

const require = createRequire(import.meta.url);
const TSC = require.resolve("typescript/bin/tsc");
const ATTW = join(ROOT, "node_modules", "@arethetypeswrong", "cli", "dist", "index.js");
/** The workspace's pinned Node 24 (the `node` dev dependency). */
const NODE_24 = join(ROOT, "node_modules", ".bin", "node");

let work = "";
let app = "";
let tarballs: string[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), "realtime-install-"));
  const packs = join(work, "packs");
  await mkdir(packs);
  tarballs = await packPackages(packs);
  app = join(work, "app");
  await mkdir(app);
  await writeFile(
    join(app, "package.json"),
    JSON.stringify({ name: "realtime-consumer", private: true, type: "module" }),
  );
  // react and its types are the versions the workspace installed, so npm finds them in its
  // cache and the install needs no network.
  const react = await workspaceVersion("react");
  const reactTypes = await workspaceVersion("@types/react");
  await run(
    "npm",
    [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--ignore-scripts",
      ...tarballs,
      `react@${react}`,
      `@types/react@${reactTypes}`,
    ],
    { cwd: app, env: npmEnv() },
  );
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function workspaceVersion(name: string): Promise<string> {
  const manifest = JSON.parse(
    await readFile(join(ROOT, "node_modules", name, "package.json"), "utf8"),
  ) as { version: string };
  return manifest.version;
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
console.log(process.version);
`;

test("the installed packages import and run on Node 24 and Node 20", async () => {
  await writeFile(join(app, "smoke.mjs"), SMOKE);
  for (const [node, major] of [
    [NODE_24, "v24."],
    [await findNode20(), "v20."],
  ] as const) {
    const version = (await run(node, ["smoke.mjs"], { cwd: app })).trim();
    assert.ok(version.startsWith(major), `${node} ran as ${version}, expected ${major}x`);
  }
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
  for (const [name, resolution] of Object.entries(resolutions)) {
    const config = `tsconfig.${name}.json`;
    await writeFile(
      join(app, config),
      JSON.stringify({ compilerOptions: { ...base, ...resolution }, files: ["consumer.ts"] }),
    );
    await run(process.execPath, [TSC, "-p", config], { cwd: app });
  }
});

test("publint and arethetypeswrong find no problem in the tarballs", async () => {
  assert.equal(tarballs.length, PUBLISHED.length);
  for (const tarball of tarballs) {
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
    await run(process.execPath, [ATTW, tarball, "--profile", "esm-only", "--no-color"]);
  }
});

test("each installed package carries its README and LICENSE and no tests", async () => {
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
  }
});
