/**
 * The web app (`apps/web`, built into `apps/web/dist` by `npm start`) at `/`.
 *
 * - Files are read once at start-up; a path that is not one of them is never touched on disk.
 * - `assets/*` have content hashes in their names: cached for a year, `immutable`. Everything
 *   else (`index.html`, the favicon) is `no-cache`: revalidated with its ETag (304 when
 *   unchanged), so a new build shows up on the next load.
 * - Text files are compressed (brotli or gzip, per `Accept-Encoding`) once, on first request.
 * - Any other GET outside `/api/` that does not look like a file (`/r/general`) gets
 *   `index.html`: the app routes on the client. `/api/…` and missing files keep the JSON 404.
 * - `/` without a build (e.g. `node src/main.ts` straight after a clone) says how to make one.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, gzipSync, constants as zlib } from "node:zlib";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/** `apps/web/dist`, next to this app. */
export const WEB_DIST_DIR = fileURLToPath(new URL("../../../web/dist/", import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".woff": "font/woff",
  ".txt": "text/plain; charset=utf-8",
};

const COMPRESSIBLE = /^(text\/|application\/(json|manifest\+json)|image\/svg\+xml)/;
/** Smaller files are not worth compressing. */
const MIN_COMPRESS_BYTES = 1024;

const IMMUTABLE = "public, max-age=31536000, immutable";
const REVALIDATE = "no-cache";

/**
 * For the HTML: everything from this origin only, no inline script or style (React sets
 * styles through the DOM, which CSP allows), images also as data:/blob:, no framing.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly cacheControl: string;
  readonly html: boolean;
  readonly compressible: boolean;
  br?: Buffer;
  gzip?: Buffer;
}

export interface PageOptions {
  /** Directory of the built app. Default {@link WEB_DIST_DIR}. */
  readonly root?: string;
}

/** Paths that are never pages of the app: the API's, and the API reference's. */
const RESERVED = ["/api", "/docs"];

export function registerPageRoutes(app: FastifyInstance, options: PageOptions = {}): void {
  const files = loadFiles(options.root ?? WEB_DIST_DIR);
  const index = files.get("/index.html");
  const sendIndex = (request: FastifyRequest, reply: FastifyReply) =>
    index
      ? sendFile(request, reply, index)
      : reply
          .code(503)
          .header("cache-control", "no-store")
          .type("text/html; charset=utf-8")
          .send(NOT_BUILT);

  // One route per file (no wildcard route: it would turn every unknown path into a "known path,
  // wrong method" 405 for the API's not-found handler).
  app.get("/", sendIndex);
  for (const [path, file] of files) {
    app.get(path, (request, reply) => sendFile(request, reply, file));
  }

  // SPA fallback: a GET that matched no route, outside /api/ and /docs (the API reference's,
  // when OPENAPI_DOCS leaves it off), and not a file name, is a page of the app
  // (`/r/general`). Everything else keeps the JSON 404.
  // A plain callback, not an async function: every request of every route passes here, and
  // an async hook costs each a promise and a turn of the microtask queue.
  app.addHook("onRequest", (request, reply, done) => {
    if (!request.is404 || (request.method !== "GET" && request.method !== "HEAD")) return done();
    const path = pathOf(request);
    if (RESERVED.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) return done();
    if (path.slice(path.lastIndexOf("/") + 1).includes(".")) return done();
    // Answered here: the request goes no further (`done` is not called).
    sendIndex(request, reply);
  });
}

function pathOf(request: FastifyRequest): string {
  const raw = request.url.split("?", 1)[0] ?? "/";
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function sendFile(request: FastifyRequest, reply: FastifyReply, file: StaticFile) {
  reply.header("cache-control", file.cacheControl);
  reply.header("etag", file.etag);
  reply.header("x-content-type-options", "nosniff");
  if (file.compressible) reply.header("vary", "accept-encoding");
  if (file.html) {
    reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
    reply.header("referrer-policy", "same-origin");
  }
  if (matches(request.headers["if-none-match"], file.etag)) return reply.code(304).send();
  reply.type(file.type);
  const encoding = file.compressible ? pickEncoding(request.headers["accept-encoding"]) : null;
  if (encoding === "br") {
    file.br ??= brotliCompressSync(file.body, {
      params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: file.body.length },
    });
    return reply.header("content-encoding", "br").send(file.br);
  }
  if (encoding === "gzip") {
    file.gzip ??= gzipSync(file.body, { level: 9 });
    return reply.header("content-encoding", "gzip").send(file.gzip);
  }
  return reply.send(file.body);
}

function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((tag) => {
    const value = tag.trim();
    return value === "*" || value === etag || value === `W/${etag}`;
  });
}

/** `br` if accepted, else `gzip` if accepted, else none (q=0 means refused). */
function pickEncoding(header: string | string[] | undefined): "br" | "gzip" | null {
  const accepted = new Set<string>();
  for (const part of (Array.isArray(header) ? header.join(",") : (header ?? "")).split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    const refused = params.some((param) => /^\s*q=0(\.0*)?\s*$/.test(param));
    if (name && !refused) accepted.add(name);
  }
  if (accepted.has("br")) return "br";
  if (accepted.has("gzip")) return "gzip";
  return null;
}

function loadFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const full = join(dir, name);
      const info = statSync(full);
      if (info.isDirectory()) {
        walk(full);
        continue;
      }
      const path = `/${relative(root, full).split(sep).join("/")}`;
      const type = CONTENT_TYPES[extname(name).toLowerCase()] ?? "application/octet-stream";
      const body = readFileSync(full);
      files.set(path, {
        body,
        type,
        etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
        cacheControl: path.startsWith("/assets/") ? IMMUTABLE : REVALIDATE,
        html: type.startsWith("text/html"),
        compressible: COMPRESSIBLE.test(type) && body.length >= MIN_COMPRESS_BYTES,
      });
    }
  };
  walk(root);
  return files;
}

const NOT_BUILT = `<!doctype html>
<meta charset="utf-8">
<title>realtime: web app not built</title>
<p>The web app is not built. <code>npm start</code> builds it; or run <code>npm run build:web</code>
and restart the service.</p>
<p>The API is up: see <code>/healthz</code>.</p>
`;
