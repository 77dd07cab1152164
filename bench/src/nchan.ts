/**
 * Nchan (nginx + the nchan module), installed on demand from the distribution's packages and
 * configured per run: one worker process (one core, like every server in the bench), access
 * log off, memory or Redis storage, HTTP/1.1 or cleartext HTTP/2.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const NGINX = "/usr/sbin/nginx";
const MODULE_CANDIDATES = [
  "/usr/lib/nginx/modules/ngx_nchan_module.so",
  "/usr/share/nginx/modules/ngx_nchan_module.so",
];

function modulePath(): string | undefined {
  return MODULE_CANDIDATES.find((p) => existsSync(p));
}

/** Installs nginx and libnginx-mod-nchan with apt when they are missing. Returns false if it could not. */
export function ensureNchan(log: (line: string) => void): boolean {
  if (existsSync(NGINX) && modulePath()) return true;
  log("installing nginx + libnginx-mod-nchan (apt-get)…");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 300_000 });
    execFileSync("apt-get", ["install", "-y", "-qq", "nginx", "libnginx-mod-nchan"], {
      stdio: "ignore",
      env,
      timeout: 600_000,
    });
  } catch (error) {
    log(`  apt-get failed: ${(error as Error).message.split("\n")[0]}`);
    return false;
  }
  return existsSync(NGINX) && modulePath() !== undefined;
}

export interface NchanConfig {
  dir: string;
  port: number;
  redisUrl?: string;
  h2?: boolean;
  /** `nchan_message_buffer_length` (Nchan's default: 10 messages per channel). */
  bufferLength?: number;
  /** The listen backlog (nginx's default on Linux: 511). */
  backlog?: number;
}

/** Writes `nginx.conf` for one Nchan node into `dir` and returns its path. */
export function writeNchanConfig(config: NchanConfig): string {
  const module = modulePath();
  if (!module) throw new Error("the nchan module is not installed");
  const { dir } = config;
  mkdirSync(join(dir, "tmp"), { recursive: true });
  const redis = config.redisUrl !== undefined;
  const user = process.getuid?.() === 0 ? "user root;" : "";
  const pass = redis ? "nchan_redis_pass bench_redis;" : "";
  const text = `
load_module ${module};
${user}
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections 20000;
  multi_accept on;
}
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  ${redis ? `upstream bench_redis { nchan_redis_server "${config.redisUrl}"; }` : ""}
  server {
    listen 127.0.0.1:${config.port}${config.h2 ? " http2" : ""}${config.backlog ? ` backlog=${config.backlog}` : ""};
    ${config.bufferLength ? `nchan_message_buffer_length ${config.bufferLength};` : ""}
    location ~ ^/sub/(\\w+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      # Like every other server here: a new subscriber starts from now, no replay of the
      # channel's buffered messages.
      nchan_subscriber_first_message newest;
      ${pass}
    }
    location ~ ^/pub/(\\w+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      ${pass}
    }
  }
}
`;
  const path = join(dir, "nginx.conf");
  writeFileSync(path, text);
  return path;
}

/** `nginx -t` on a config; throws with nginx's message when it is refused. */
export function testNchanConfig(dir: string, conf: string): void {
  execFileSync(NGINX, ["-t", "-p", dir, "-c", conf], { stdio: "pipe", timeout: 30_000 });
}
