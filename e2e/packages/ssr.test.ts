/**
 * The published packages in a Vite + React app, as a user builds one (issue #18, part c): the
 * tarballs (`scripts/packages.ts`, as `npm run pack:packages` packs them) are installed into a
 * new project outside the workspace with react, react-dom, vite and @vitejs/plugin-react; its
 * component uses `RealtimeProvider` and `useEventChannel` with a client created at module scope
 * (no `eventSource` option: the browser's own, looked up when it connects). Vite builds the
 * browser bundle and a server entry (`vite build --ssr`); Node runs the server bundle, which
 * imports the installed `@realtime/*` from node_modules, and renders the app once.
 *
 * Creating the client touches no `EventSource`, `window` or timer, so the render neither crashes
 * nor leaves anything running: the process prints the HTML and exits by itself.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { npmEnv, ROOT, run } from "../../scripts/packages.ts";
import { type ConsumerProject, installConsumer } from "./consumer-project.ts";

/** The workspace's pinned Node 24 (the `node` dev dependency). */
const NODE_24 = join(ROOT, "node_modules", ".bin", "node");

let project: ConsumerProject | undefined;
let app = "";

const FILES: Record<string, string> = {
  "vite.config.js": `
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";
export default defineConfig({ plugins: [react()], logLevel: "warn" });
`,
  "index.html": `<!doctype html>
<html><body><div id="root"></div><script type="module" src="/src/entry-client.jsx"></script></body></html>
`,
  // Module scope, no eventSource: what an app (and a Next.js page) does.
  "src/realtime.js": `
import { createRealtimeClient } from "@realtime/client";
export const client = createRealtimeClient({ url: "" });
`,
  "src/App.jsx": `
import { RealtimeProvider, useConnectionState, useEventChannel } from "@realtime/react";
import { useState } from "react";
import { client } from "./realtime.js";

function Feed() {
  const [messages, setMessages] = useState([]);
  useEventChannel("channel:general", {
    onEvent: (event) => setMessages((previous) => [...previous, event.content]),
  });
  const { state } = useConnectionState();
  return (
    <section id="feed" data-state={state}>
      <p>{\`\${messages.length} messages\`}</p>
    </section>
  );
}

export function App() {
  return (
    <RealtimeProvider client={client}>
      <Feed />
    </RealtimeProvider>
  );
}
`,
  "src/entry-client.jsx": `
import { StrictMode } from "react";
import { hydrateRoot } from "react-dom/client";
import { App } from "./App.jsx";
hydrateRoot(document.getElementById("root"), <StrictMode><App /></StrictMode>);
`,
  "src/entry-server.jsx": `
import { renderToString } from "react-dom/server";
import { App } from "./App.jsx";
export function render() {
  return renderToString(<App />);
}
`,
  "render.js": `
const { render } = await import("./dist/server/entry-server.js");
process.stdout.write(render());
`,
};

before(async () => {
  project = await installConsumer({
    name: "realtime-vite-app",
    extras: ["react", "react-dom", "vite", "@vitejs/plugin-react"],
    files: FILES,
  });
  app = project.app;
});

after(async () => {
  await project?.remove();
});

const vite = (...args: string[]) =>
  run(NODE_24, [join(app, "node_modules", "vite", "bin", "vite.js"), "build", ...args], {
    cwd: app,
    env: npmEnv(),
  });

test("the installed React entry keeps its 'use client' directive", async () => {
  const entry = await readFile(
    join(app, "node_modules", "@realtime", "react", "dist", "index.js"),
    "utf8",
  );
  assert.ok(entry.startsWith('"use client";'), `dist/index.js starts: ${entry.slice(0, 60)}`);
});

test("Vite builds the app, and its server bundle renders it once on Node", async () => {
  await vite("--outDir", "dist/client");
  await vite("--ssr", "src/entry-server.jsx", "--outDir", "dist/server");

  // The browser bundle carries the hook and the client it runs on (minified: their strings).
  const assets = join(app, "dist", "client", "assets");
  const scripts = (await readdir(assets)).filter((file) => file.endsWith(".js"));
  assert.equal(scripts.length, 1, `one script: ${scripts.join(", ")}`);
  const bundle = await readFile(join(assets, scripts[0] ?? ""), "utf8");
  for (const text of [
    "channel:general",
    "useRealtimeClient: no <RealtimeProvider> above this component",
    "no global EventSource: pass `eventSource`",
    "/api/events",
  ]) {
    assert.ok(bundle.includes(text), `the browser bundle lacks ${JSON.stringify(text)}`);
  }

  // The server bundle leaves @realtime/* to node_modules: what it renders is the installed dist.
  const server = await readFile(join(app, "dist", "server", "entry-server.js"), "utf8");
  assert.match(server, /from "@realtime\/react"/);

  // Everything the process prints is the HTML: no error, no warning; and it exits by itself.
  const html = await run(NODE_24, ["render.js"], { cwd: app });
  assert.equal(html, '<section id="feed" data-state="closed"><p>0 messages</p></section>');
});
