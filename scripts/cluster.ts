/**
 * `npm run cluster [-- --pods N] [-- --redis-cluster]`: a local multi-pod setup to try on one
 * machine. Starts its own redis-server on a free port (or uses `REDIS_URL` when set; with
 * `--redis-cluster`, a throwaway 3-master Redis Cluster), then N service processes (default 3)
 * on ports 8081, 8082, … sharing a random `JWT_SECRET`, prints their URLs and a curl recipe,
 * and stops everything on Ctrl-C.
 *
 * Options: `--pods N`, `--port P` (first port, default 8081), `--redis-cluster`.
 * Environment: `REDIS_URL`, `LOG_LEVEL` (default warn), `HOST` (default 127.0.0.1), and
 * anything else the service reads (passed through to every pod).
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { createAuth } from "@realtime/service";
import { launchPod, type Pod } from "@realtime/testkit/pods";
import { startRedis, startRedisCluster } from "@realtime/testkit/redis";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "3" },
    port: { type: "string", default: "8081" },
    "redis-cluster": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("usage: npm run cluster [-- --pods N] [--port FIRST_PORT] [--redis-cluster]");
  process.exit(0);
}
const podCount = Number(values.pods);
const firstPort = Number(values.port);
if (!Number.isInteger(podCount) || podCount < 1 || podCount > 32) {
  console.error("--pods must be an integer in 1..32");
  process.exit(64);
}
if (!Number.isInteger(firstPort) || firstPort < 1 || firstPort + podCount - 1 > 65535) {
  console.error("--port must be a port number");
  process.exit(64);
}

const host = process.env.HOST ?? "127.0.0.1";
const secret = randomBytes(32).toString("base64url");
let stopRedis: () => Promise<void> = async () => {};
const redisEnv: Record<string, string> = {};
let redisLabel: string;
if (values["redis-cluster"]) {
  const cluster = await startRedisCluster(3);
  stopRedis = cluster.stop;
  redisEnv.REDIS_CLUSTER_NODES = cluster.nodes.map((n) => `${n.host}:${n.port}`).join(",");
  redisLabel = `a 3-master Redis Cluster (${redisEnv.REDIS_CLUSTER_NODES})`;
} else if (process.env.REDIS_URL) {
  redisEnv.REDIS_URL = process.env.REDIS_URL;
  redisLabel = `REDIS_URL (${new URL(process.env.REDIS_URL).host})`;
} else {
  const redis = await startRedis();
  stopRedis = redis.stop;
  redisEnv.REDIS_URL = redis.url;
  redisLabel = `its own redis-server (${redis.url}, in memory, gone on exit)`;
}

let pods: { readonly name: string; readonly pod: Pod }[] = [];
let stopping = false;

/** Writes a pod's output line by line, each prefixed with its name. */
function prefixed(name: string) {
  const pending = { stdout: "", stderr: "" };
  return (chunk: string, stream: "stdout" | "stderr") => {
    const lines = (pending[stream] + chunk).split("\n");
    pending[stream] = lines.pop() ?? "";
    const out = stream === "stdout" ? process.stdout : process.stderr;
    for (const line of lines) out.write(`[${name}] ${line}\n`);
  };
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.log("\nstopping: draining the pods…");
    const timer = setTimeout(() => {
      for (const { pod } of pods) void pod.kill("SIGKILL");
    }, 10_000);
    await Promise.all(pods.map(({ pod }) => pod.kill("SIGTERM")));
    clearTimeout(timer);
    await stopRedis();
    console.log("stopped.");
  }
  process.exit(code);
}

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

try {
  // Pods run in their own process group (Ctrl-C reaches this script only, which then drains
  // them in order); the kit SIGKILLs any left when this script exits.
  pods = await Promise.all(
    Array.from({ length: podCount }, async (_, i) => {
      const name = `pod${i + 1}`;
      const env = {
        ...redisEnv,
        NODE_ENV: process.env.NODE_ENV ?? "development",
        LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
        HOST: host,
        PORT: String(firstPort + i),
        JWT_SECRET: secret,
      };
      const options = { inheritEnv: true, detached: true, onOutput: prefixed(name) };
      return { name, pod: await launchPod(env, { ...options, readyTimeoutMs: 30_000 }) };
    }),
  );
} catch (error) {
  console.error(String(error));
  await stop(1);
}
for (const { name, pod } of pods) {
  void pod.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(`[${name}] exited (${signal ?? code}); stopping everything`);
    void stop(1);
  });
}

const serviceToken = await createAuth({
  secret,
  issuer: process.env.JWT_ISSUER ?? "realtime",
  audience: process.env.JWT_AUDIENCE ?? "realtime",
  tokenTtlSeconds: 86_400,
  cookieName: "rt_session",
}).issueServiceToken({ service: "cluster-demo", scopes: ["publish"] });

const [first, second = first, third = second] = pods.map((p) => p.pod.url);
console.log(`
realtime: ${pods.length} pod${pods.length > 1 ? "s" : ""} on ${redisLabel}
${pods.map((p) => `  ${p.name}  ${p.pod.url}`).join("\n")}

Open ${first}/ and ${second}/ in two browser windows: chat posted on one pod arrives on the other.

Or with curl — a user token from ${first}, a stream on ${second}, a post on ${third}:

  TOKEN=$(curl -s -X POST ${first}/api/auth/dev-login -H 'content-type: application/json' \\
    -d '{"name":"Ada"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')
  curl -N -H "Authorization: Bearer $TOKEN" '${second}/api/events?channel=channel:general'
  curl -X POST ${third}/api/chat/messages -H "Authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' -d '{"channel":"general","content":"hello from ${third}"}'

A backend service publishes with a service token (this one is valid for a day, on every pod):

  SVC=${serviceToken}
  curl -X POST ${first}/api/publish -H "Authorization: Bearer $SVC" \\
    -H 'content-type: application/json' -d '{"channel":"channel:general","event":{"type":"notice","message":"hi"}}'

Resume: stop the stream (Ctrl-C on curl), post a few messages, then reconnect to any pod with
the last id: line you saw:  curl -N -H "Last-Event-ID: <id>" -H "Authorization: Bearer $TOKEN" '${second}/api/events?channel=channel:general'

Ctrl-C stops the pods and ${values["redis-cluster"] || !process.env.REDIS_URL ? "Redis" : "leaves REDIS_URL alone"}.
`);
