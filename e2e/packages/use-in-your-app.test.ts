/**
 * docs/use-in-your-app.md, run as a user runs it: every published package is packed and
 * installed into a new project outside the workspace (with Fastify and the `eventsource`
 * package, as the page says), every example on the page is saved there under its name, and:
 * - the examples type-check under a strict `tsc` (the React one included);
 * - the Fastify server example (the plugin with its own authentication, over Redis) serves the
 *   client example a stream; an event posted to the server's own route and one sent by the
 *   publisher example over Redis both reach it;
 * - the `node:http` example serves a stream that receives its ticks.
 * An example that no longer runs, or no longer says what the packages do, fails here.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startChild, type TestChild } from "@realtime/testkit/child-process";
import { postJson } from "@realtime/testkit/http";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { openHttp1 } from "@realtime/testkit/sse-client";
import { ROOT, run } from "../../scripts/packages.ts";
import { type ConsumerProject, installConsumer } from "./consumer-project.ts";

const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const PAGE = join(ROOT, "docs", "use-in-your-app.md");

let project: ConsumerProject | undefined;
let app = "";
let redis: TestRedis | undefined;
const children: TestChild[] = [];

/** The page's examples: the name above each fence (`<!-- example: name -->`) and its code. */
function examplesOf(markdown: string): Map<string, string> {
  const examples = new Map<string, string>();
  const pattern = /<!-- example: ([\w.-]+) -->\n```(?:ts|tsx)\n([\s\S]*?)\n```/g;
  for (const [, name, code] of markdown.matchAll(pattern)) {
    assert.ok(name && code !== undefined);
    assert.ok(!examples.has(name), `two examples named ${name}`);
    examples.set(name, `${code}\n`);
  }
  return examples;
}

before(async () => {
  // What the page tells a user to install next to the packages.
  project = await installConsumer({
    name: "realtime-user-app",
    extras: [
      "fastify",
      "eventsource",
      "react",
      "@types/react",
      "@types/node",
      "@types/redis-errors",
    ],
  });
  app = project.app;
  for (const [name, code] of examplesOf(await readFile(PAGE, "utf8"))) {
    await writeFile(join(app, name), code);
  }
  redis = await startRedis();
});

after(async () => {
  await Promise.all(children.map((child) => child.kill()));
  await redis?.stop();
  await project?.remove();
});

/** Runs an example with the workspace's Node 24 (which runs `.ts` as it is) in the app. */
function runExample(name: string, env: Record<string, string>): TestChild {
  const child = startChild(join(app, name), [], env, { cwd: app });
  children.push(child);
  return child;
}

/** The address a server example printed (`listening on …`). */
async function listeningOn(child: TestChild): Promise<string> {
  await child.waitFor(/listening on \S+/);
  const match = /listening on (\S+)/.exec(child.output());
  assert.ok(match?.[1], child.output());
  return match[1];
}

test("the page has every example the test runs", async () => {
  const names = [...examplesOf(await readFile(PAGE, "utf8")).keys()].sort();
  assert.deepEqual(names, ["Room.tsx", "client.ts", "node-server.ts", "publisher.ts", "server.ts"]);
});

test("the examples type-check in a strict TypeScript project", async () => {
  await writeFile(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        lib: ["es2022", "dom"],
        jsx: "react-jsx",
        types: ["node"],
        allowImportingTsExtensions: true,
        skipLibCheck: false,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
      },
      files: ["server.ts", "node-server.ts", "client.ts", "publisher.ts", "Room.tsx"],
    }),
  );
  await run(process.execPath, [TSC, "-p", join(app, "tsconfig.json")], { cwd: app });
});

test("the Fastify server, the client and the publisher examples work together over Redis", async () => {
  assert.ok(redis);
  const server = runExample("server.ts", { PORT: "0", REDIS_URL: redis.url });
  const base = await listeningOn(server);
  const client = runExample("client.ts", { REALTIME_URL: base });
  await client.waitFor("state open");

  // An event from the server's own route (app.realtime.publish)…
  const posted = await postJson(`${base}/rooms/lobby/messages`, "bob", { text: "hi" });
  assert.equal(posted.status, 201, posted.text);
  const messageId = String(posted.json?.messageId);
  await client.waitFor(new RegExp(`"messageId":"${messageId}"`));
  assert.match(client.output(), /"type":"message\.created"/);
  assert.match(client.output(), /"userId":"bob"/);

  // …and one from a process that only publishes, through Redis to the server's subscribers.
  const publisher = runExample("publisher.ts", { REDIS_URL: redis.url });
  await publisher.waitFor("published at offset 2");
  assert.deepEqual(await publisher.exited, { code: 0, signal: null });
  await client.waitFor('"messageId":"m-42"');

  // The plugin's own refusals: no login, another user's channel.
  const anonymous = await fetch(`${base}/api/events?channel=channel:lobby`);
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as { code: string }).code, "RT_ERR_UNAUTHORIZED");
  const foreign = await fetch(`${base}/api/events?channel=user:bob`, {
    headers: { authorization: "Bearer alice" },
  });
  assert.equal(foreign.status, 403);
  await foreign.body?.cancel();
});

test("the node:http example serves a stream", async () => {
  const server = runExample("node-server.ts", { PORT: "0" });
  await server.waitFor(/listening on \{.*"port":\d+/);
  const port = /"port":(\d+)/.exec(server.output())?.[1];
  const stream = await openHttp1(`http://127.0.0.1:${port}/api/events?channel=channel:clock`, {
    authorization: "Bearer carol",
  });
  try {
    assert.equal(stream.status, 200);
    const tick = await stream.waitFor((event) => event.data.includes('"type":"tick"'), 10_000);
    assert.equal(JSON.parse(tick.data).channel, "channel:clock");
  } finally {
    stream.close();
  }
});
