/**
 * The container image's command (the `Dockerfile`'s ENTRYPOINT, behind tini): one image runs
 * what its first argument names, in this process (no npm or shell in between, so SIGTERM from
 * tini reaches the service itself).
 *
 * - `pod` (the default CMD): the service, as `npm start` without its web build (the image holds
 *   the prebuilt `apps/web/dist`).
 * - `worker`: a render worker (`npm run worker`), for Redis mode.
 * - `realtime <command> …`: the operator CLI (`realtime check-config`, `realtime token`, …).
 * - `healthcheck`: the image's HEALTHCHECK; exit 0 when the pod this container runs answers
 *   `GET /healthz` with 200 on loopback within 3 s, else 1. It reads the pod's listener from
 *   the same environment (`PORT`, `HOST`, TLS, `HTTP2=h2c`).
 *
 * `e2e/image/production-tree.test.ts` runs this file in a tree assembled as the image is.
 */
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import { isIPv6 } from "node:net";
import { ConfigError, loadConfig } from "./config.ts";

const USAGE = "usage: pod | worker | realtime <command> [options] | healthcheck";
const HEALTHCHECK_TIMEOUT_MS = 3_000;

const [command = "pod", ...args] = process.argv.slice(2);
switch (args.length > 0 && command !== "realtime" ? "" : command) {
  case "pod":
    await import("./main.ts");
    break;
  case "worker":
    await import("./worker-main.ts");
    break;
  case "realtime":
    // The CLI reads its arguments from process.argv.slice(2).
    process.argv.splice(2, 1);
    await import("./cli/main.ts");
    break;
  case "healthcheck":
    process.exitCode = await healthcheck();
    break;
  default:
    // `pod`, `worker` and `healthcheck` take no arguments: they are configured by environment.
    console.error(
      `realtime image: cannot run ${JSON.stringify(process.argv.slice(2).join(" "))}; ${USAGE}`,
    );
    process.exitCode = 64; // EX_USAGE
}

async function healthcheck(): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`healthcheck: ${error.message}`);
    return 1;
  }
  const { host: bound, port, tls, h2c } = config.http;
  const host = bound === "0.0.0.0" || bound === "::" ? "127.0.0.1" : bound;
  const origin = `${tls ? "https" : "http"}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const status = await (h2c ? h2cStatus(origin) : http1Status(origin, tls !== null));
  if (status === 200) return 0;
  console.error(`healthcheck: GET ${origin}/healthz answered ${status || "nothing"}`);
  return 1;
}

function http1Status(origin: string, tls: boolean): Promise<number> {
  return new Promise((resolve) => {
    // Loopback to this container's own pod: its certificate names the public host, not this one.
    const options = { agent: false, timeout: HEALTHCHECK_TIMEOUT_MS, rejectUnauthorized: false };
    const request = (tls ? https : http).get(`${origin}/healthz`, options, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(0));
  });
}

function h2cStatus(origin: string): Promise<number> {
  return new Promise((resolve) => {
    const session = http2.connect(origin);
    const done = (status: number) => {
      clearTimeout(timer);
      session.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => done(0), HEALTHCHECK_TIMEOUT_MS);
    session.once("error", () => done(0));
    const request = session.request({ ":path": "/healthz" });
    request.once("response", (headers) => done(Number(headers[":status"] ?? 0)));
    request.once("error", () => done(0));
  });
}
