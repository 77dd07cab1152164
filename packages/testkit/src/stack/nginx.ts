/**
 * nginx for the reference stack: the Debian package's binary with the stack's own config,
 * prefix, pid file and ports (never the system service), rendered from
 * `deploy/nginx/nginx.conf`, with a self-signed certificate made by openssl.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import https from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import type { PodExit } from "../pods.ts";

const run = promisify(execFile);

/** The reference nginx configuration, with `@@NAME@@` placeholders. */
export const NGINX_TEMPLATE = new URL("../../../../deploy/nginx/nginx.conf", import.meta.url);
const NGINX_BIN = process.env.NGINX_BIN || "/usr/sbin/nginx";
const OPENSSL_BIN = process.env.OPENSSL_BIN || "/usr/bin/openssl";
/** How long nginx may take to answer through to a pod. */
const NGINX_START_TIMEOUT_MS = 10_000;

export interface NginxProcess {
  readonly pid: number;
  readonly exited: Promise<PodExit>;
  /** The rendered configuration file. */
  readonly config: string;
  readonly errorLog: string;
  readonly accessLog: string;
}

/** Replaces every `@@NAME@@` of `template`; throws on a placeholder without a value. */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>) {
  return template.replace(/@@([A-Z_]+)@@/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for @@${name}@@`);
    return value;
  });
}

/** The `server` lines of the upstream block, one per pod. */
export function upstreamServers(ports: readonly number[], failTimeoutSeconds: number): string {
  return ports
    .map((port) => `    server 127.0.0.1:${port} max_fails=1 fail_timeout=${failTimeoutSeconds}s;`)
    .join("\n");
}

/** A self-signed certificate for localhost / 127.0.0.1 (P-256, 30 days), made by openssl. */
export async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  // biome-ignore format: flag/value pairs read better side by side
  await run(OPENSSL_BIN, [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-sha256",
    "-nodes", "-days", "30", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", key, "-out", cert,
  ], { timeout: 10_000 });
  return { cert, key };
}

const nginxChildren = new Set<ChildProcess>();
// nginx's workers outlive a SIGKILLed master: whatever ends this process, ask the master to
// shut down (SIGTERM: fast shutdown, it stops its workers).
process.once("exit", () => {
  for (const child of nginxChildren) child.kill("SIGTERM");
});

export async function startNginx(prefix: string, config: string) {
  const child = spawn(NGINX_BIN, ["-p", `${prefix}/`, "-c", config, "-e", "stderr"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  nginxChildren.add(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_192);
  });
  const exited = new Promise<PodExit>((resolve) => {
    child.once("exit", (code, signal) => {
      nginxChildren.delete(child);
      resolve({ code, signal });
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  return { child, exited, stderr: () => stderr };
}

export async function stopNginx(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Waits until `GET /healthz` through nginx reaches a pod (200). */
export async function waitThroughProxy(
  url: string,
  nginx: { child: ChildProcess; stderr: () => string },
): Promise<void> {
  const deadline = Date.now() + NGINX_START_TIMEOUT_MS;
  for (;;) {
    if (nginx.child.exitCode !== null || nginx.child.signalCode !== null) {
      throw new Error(`nginx exited (${nginx.child.exitCode}):\n${nginx.stderr()}`);
    }
    if ((await httpsStatus(`${url}/healthz`)) === 200) return;
    if (Date.now() > deadline) {
      throw new Error(`nginx did not answer 200 on ${url}/healthz:\n${nginx.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Status of an HTTPS GET that accepts the self-signed certificate (0 when nothing answers). */
export function httpsStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = https.get(
      url,
      { agent: false, rejectUnauthorized: false, timeout: 2_000 },
      (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      },
    );
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(0));
  });
}
