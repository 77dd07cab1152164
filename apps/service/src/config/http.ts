/**
 * `config.http`: the listeners, TLS and HTTP/2, body and timeout limits, and which proxies to
 * believe for the client address.
 */
import { isIP } from "node:net";
import { type EnvReader, show } from "./env.ts";

export interface HttpConfig {
  /** TCP port to listen on (`PORT`). Default 8080; 0 picks a free port. */
  readonly port: number;
  /** Interface to bind (`HOST`). Default `"0.0.0.0"`. */
  readonly host: string;
  /**
   * Port of a second, internal listener that serves only `GET /metrics`, in plain HTTP/1.1
   * (`METRICS_PORT`); the public port then answers 404 for `/metrics`. Default null: `/metrics`
   * is served on the public port, as in development (deny it at the proxy: the reference nginx
   * does). 0 picks a free port.
   */
  readonly metricsPort: number | null;
  /**
   * Interface the metrics listener binds (`METRICS_HOST`). Default {@link host}: Prometheus
   * usually scrapes from another host (or pod); the port is internal because the proxy never
   * forwards to it. `127.0.0.1` when the scraper runs beside the process.
   */
  readonly metricsHost: string;
  /**
   * TLS certificate and key file paths (`TLS_CERT`, `TLS_KEY`); both or neither. Default null
   * (cleartext). With TLS the server speaks HTTP/2 via ALPN with HTTP/1.1 fallback.
   */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null;
  /**
   * Cleartext HTTP/2 without upgrade (`HTTP2=h2c`), for pods behind a TLS-terminating proxy
   * that speaks h2c. Default false (plain HTTP/1.1 when TLS is off too).
   */
  readonly h2c: boolean;
  /**
   * Concurrent streams one HTTP/2 session may have (`HTTP2_MAX_CONCURRENT_STREAMS`), sent in
   * SETTINGS. Default 128, as nginx: a browser needs a handful per origin; raise it for an h2c
   * proxy that multiplexes many clients' SSE streams over few sessions (each stream holds a slot
   * for as long as it is open). Node's own default would be 2^32 − 1.
   */
  readonly h2MaxConcurrentStreams: number;
  /**
   * Connections the kernel may hold completed but not yet accepted (`LISTEN_BACKLOG`, the
   * `listen(2)` backlog; Linux caps it at `net.core.somaxconn`, 4096 by default since 5.4).
   * Default 4096. Node's own 511 overflows when a pod dies and its clients reconnect to the
   * others at once: the kernel drops what does not fit and each dropped client retries its SYN
   * after 1 s, 3 s, 7 s… (the reconnect storm of bench/README.md).
   */
  readonly listenBacklog: number;
  /** Largest accepted request body, in bytes (`BODY_LIMIT_BYTES`). Default 65536. */
  readonly bodyLimitBytes: number;
  /**
   * Longest a client may take to send a request's headers, in ms (`HEADERS_TIMEOUT_MS`), and
   * the whole request, body included (`REQUEST_TIMEOUT_MS`); then the connection (HTTP/1.1) or
   * the stream (HTTP/2) is dropped. Slowloris defence. They govern receiving the request only:
   * an SSE response lives on. Defaults 10000 and 30000.
   */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /**
   * Which proxies' `X-Forwarded-For` to believe for the client IP (`TRUST_PROXY`): false
   * (default: the socket's peer is the client), a hop count, or proxy addresses/CIDRs.
   */
  readonly trustProxy: false | number | readonly string[];
  /**
   * Serve the API reference: the OpenAPI document at `/docs/json` (and `/docs/yaml`) and the
   * Swagger UI at `/docs` (`OPENAPI_DOCS`). Default on outside production, off in production,
   * where `OPENAPI_DOCS=true` turns it on (then `/docs` answers on the public port: deny it at
   * the proxy if the API is not meant to be browsed there).
   */
  readonly openapiDocs: boolean;
}

export function readHttp(r: EnvReader, options: { isProduction: boolean }): HttpConfig {
  const tls = readTls(r);
  const http2 = r.raw("HTTP2");
  const h2c = http2 === "h2c";
  if (http2 !== undefined && !h2c) {
    r.problems.push(`HTTP2 must be "h2c" or unset, got ${show(http2)}`);
  }
  if (h2c && tls) {
    // h2c is cleartext by definition; with a certificate the server already offers h2 via ALPN.
    r.problems.push("HTTP2=h2c cannot be combined with TLS_CERT/TLS_KEY (TLS already offers h2)");
  }
  const port = r.int("PORT", 8080, 0, 65535);
  const host = r.string("HOST", "0.0.0.0");
  const metricsPort =
    r.raw("METRICS_PORT") === undefined ? null : r.int("METRICS_PORT", 0, 0, 65535);
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === port) {
    r.problems.push(`METRICS_PORT must differ from PORT (${port}): it is a listener of its own`);
  }
  const http: HttpConfig = {
    port,
    host,
    metricsPort,
    metricsHost: r.string("METRICS_HOST", host),
    tls,
    h2c,
    h2MaxConcurrentStreams: r.int("HTTP2_MAX_CONCURRENT_STREAMS", 128, 1, 2 ** 31 - 1),
    listenBacklog: r.int("LISTEN_BACKLOG", 4096, 1, 65535),
    bodyLimitBytes: r.int("BODY_LIMIT_BYTES", 65536),
    headersTimeoutMs: r.int("HEADERS_TIMEOUT_MS", 10000, 100),
    requestTimeoutMs: r.int("REQUEST_TIMEOUT_MS", 30000, 100),
    trustProxy: readTrustProxy(r),
    openapiDocs: r.bool("OPENAPI_DOCS", !options.isProduction),
  };
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    // Node refuses a headers timeout above the request timeout.
    r.problems.push(
      `HEADERS_TIMEOUT_MS (${http.headersTimeoutMs}) must not exceed REQUEST_TIMEOUT_MS (${http.requestTimeoutMs})`,
    );
  }
  return http;
}

function readTls(r: EnvReader): HttpConfig["tls"] {
  const certFile = r.raw("TLS_CERT");
  const keyFile = r.raw("TLS_KEY");
  if (certFile && keyFile) return { certFile, keyFile };
  if (certFile || keyFile) {
    r.problems.push("TLS_CERT and TLS_KEY must be set together (or neither)");
  }
  return null;
}

/** An IPv4/IPv6 address, optionally with a `/prefix` length. */
function isAddressOrCidr(value: string): boolean {
  const slash = value.indexOf("/");
  const address = slash < 0 ? value : value.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash < 0) return true;
  const bits = value.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  return /^[0-9]{1,3}$/.test(bits) && Number(bits) <= max;
}

/**
 * `TRUST_PROXY`: unset or `false` → false; a hop count (1–10); or a comma list of proxy
 * addresses/CIDRs. `true` (believe any `X-Forwarded-For`) is refused: it lets every client
 * pick its own IP and walk past the per-IP limits.
 */
function readTrustProxy(r: EnvReader): false | number | readonly string[] {
  const value = r.raw("TRUST_PROXY");
  if (value === undefined || value === "false" || value === "0") return false;
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value);
    if (hops >= 1 && hops <= 10) return hops;
  } else if (value !== "true") {
    const parts = value.split(",").map((part) => part.trim());
    if (parts.every((part) => part.length > 0 && isAddressOrCidr(part))) return parts;
  }
  r.problems.push(
    `TRUST_PROXY must be false, a hop count 1..10, or a comma list of proxy IPs/CIDRs (never "true"), got ${show(value)}`,
  );
  return false;
}
