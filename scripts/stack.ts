import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createAuth } from "@realtime/service";
import type { Pod } from "@realtime/testkit/pods";
import { defaultRunDir, formatReport, rollingRestart, startStack } from "@realtime/testkit/stack";

// --- CLI ------------------------------------------------------------------------------------

interface StackState {
  readonly pid: number;
  readonly url: string;
  readonly pods: readonly string[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readState(runDir: string): StackState | null {
  try {
    return JSON.parse(readFileSync(join(runDir, "state.json"), "utf8")) as StackState;
  } catch {
    return null;
  }
}

async function stopCommand(runDir: string): Promise<void> {
  const state = readState(runDir);
  if (!state || !alive(state.pid)) {
    console.log(`no stack is running (${runDir})`);
    return;
  }
  process.kill(state.pid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (alive(state.pid)) {
    if (Date.now() > deadline) throw new Error(`the stack (pid ${state.pid}) did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(`stopped the stack at ${state.url}`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      pods: { type: "string", default: "3" },
      port: { type: "string", default: "8443" },
      "pod-port": { type: "string", default: "8081" },
      "run-dir": { type: "string" },
      "redis-cluster": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const runDir = values["run-dir"] ?? defaultRunDir();
  if (values.help || (positionals.length > 0 && positionals[0] !== "stop")) {
    console.log(
      "usage: npm run stack [-- --pods N] [--port HTTPS_PORT] [--pod-port FIRST] [--redis-cluster] [--run-dir DIR]\n" +
        "       npm run stack -- stop\n       npm run stack:restart",
    );
    return;
  }
  if (positionals[0] === "stop") return stopCommand(runDir);

  const pods = Number(values.pods);
  const port = Number(values.port);
  const podPort = Number(values["pod-port"]);
  if (!Number.isInteger(pods) || pods < 1 || pods > 32) throw new Error("--pods: 1..32");
  for (const p of [port, podPort, podPort + pods - 1]) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error("--port/--pod-port: a port");
  }
  const running = readState(runDir);
  if (running && alive(running.pid)) {
    throw new Error(
      `a stack is already running (pid ${running.pid}, ${running.url}): \`npm run stack -- stop\``,
    );
  }

  // Every service variable of this shell reaches the pods (LOG_LEVEL, RETRY_MS, …).
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("npm_")) env[name] = value;
  }
  delete env.PORT;
  // The stack decides where Redis is: its own, REDIS_URL, or its own cluster.
  delete env.REDIS_CLUSTER_NODES;
  if (values["redis-cluster"]) delete env.REDIS_URL;
  // The pods serve the web app at / from apps/web/dist: build it when it is missing or stale.
  const { ensureWebBuilt } = await import("../apps/web/build.ts");
  await ensureWebBuilt();
  console.log(`starting redis, ${pods} pods and nginx…`);
  const stack = await startStack({
    pods,
    port,
    podPort,
    runDir,
    env,
    redisUrl: process.env.REDIS_URL || undefined,
    redisCluster: values["redis-cluster"],
  });

  let stopping = false;
  let restarting = false;
  let control: http.Server | undefined;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log("\nstopping: draining the pods…");
    control?.close();
    await stack.stop();
    console.log("stopped.");
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(0));
  process.on("SIGTERM", () => void shutdown(0));
  void stack.nginx.exited.then((exit) => {
    if (stopping) return;
    console.error(`nginx exited (${exit.signal ?? exit.code}); see ${stack.nginx.errorLog}`);
    void shutdown(1);
  });
  const watch = (pod: Pod, name: string) => {
    const current = pod.exited;
    void current.then((exit) => {
      if (stopping || restarting || pod.exited !== current) return;
      console.error(
        `${name} exited unexpectedly (${exit.signal ?? exit.code}); nginx routes around it. ` +
          `Its last output:\n${pod.output().slice(-2_000)}`,
      );
    });
  };
  stack.pods.forEach((pod, i) => {
    watch(pod, `pod${i + 1}`);
  });

  // `npm run stack:restart` talks to this over a Unix socket in the run directory.
  const socketPath = join(runDir, "control.sock");
  if (existsSync(socketPath)) rmSync(socketPath);
  control = http.createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://stack");
    if (request.method !== "POST" || url.pathname !== "/rolling-restart") {
      response.writeHead(404).end("POST /rolling-restart\n");
      return;
    }
    if (restarting || stopping) {
      response.writeHead(409).end("a rolling restart or a stop is already running\n");
      return;
    }
    restarting = true;
    response.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
    const say = (line: string) => {
      console.log(`[rolling restart] ${line}`);
      response.write(`${line}\n`);
    };
    const minReadyMs = Number(url.searchParams.get("minReadyMs") ?? 2_500);
    rollingRestart(stack.pods, {
      minReadyMs: Number.isFinite(minReadyMs) ? minReadyMs : 2_500,
      log: say,
      onReady: (pod, i) => watch(pod, `pod${i + 1}`),
    })
      .then(
        (report) => say(formatReport(report)),
        (error: unknown) =>
          say(`failed: ${error instanceof Error ? error.message : String(error)}`),
      )
      .finally(() => {
        restarting = false;
        response.end();
      });
  });
  await new Promise<void>((resolve) => control?.listen(socketPath, resolve));
  const state: StackState = {
    pid: process.pid,
    url: stack.url,
    pods: stack.pods.map((pod) => pod.url),
  };
  writeFileSync(join(runDir, "state.json"), `${JSON.stringify(state, null, 2)}\n`);

  const token = await createAuth({
    secret: stack.secret,
    issuer: env.JWT_ISSUER ?? "realtime",
    audience: env.JWT_AUDIENCE ?? "realtime",
    tokenTtlSeconds: 86_400,
    cookieName: "rt_session",
  }).issueServiceToken({ service: "stack-demo", scopes: ["publish"] });
  const docs =
    (env.NODE_ENV ?? "development") === "production" ? "" : `\n  docs    ${stack.url}/docs`;
  console.log(`
realtime stack: nginx (TLS, HTTP/2) → ${stack.pods.length} pods → redis (${stack.redisUrl})

  open    ${stack.url}/        (self-signed certificate: accept it once)${docs}
${stack.pods.map((pod, i) => `  pod${i + 1}    ${pod.url}`).join("\n")}
  nginx   ${stack.nginx.config}
  logs    ${join(runDir, "nginx", "logs")}

A stream and a publish through nginx (-k: the certificate is self-signed):

  TOKEN=$(curl -sk -X POST ${stack.url}/api/auth/dev-login -H 'content-type: application/json' \\
    -d '{"name":"Ada"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')
  curl -Nsk --http2 -H "Authorization: Bearer $TOKEN" '${stack.url}/api/events?channel=channel:general'
  curl -sk -X POST ${stack.url}/api/publish -H 'Authorization: Bearer ${token}' \\
    -H 'content-type: application/json' -d '{"channel":"channel:general","event":{"type":"notice","message":"hi"}}'

Rolling restart (streams stay up):  npm run stack:restart
Stop (or Ctrl-C here):              npm run stack -- stop
`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`stack: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
