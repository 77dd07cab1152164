/**
 * What the request log may say about a request. Tokens travel only in `Authorization` or the
 * session cookie (both redacted by pino), but a client can still put one in a URL — the
 * request is refused, and its URL would be logged as sent. Query parameters whose name says
 * they carry a secret are written as `[redacted]`.
 */
import type { FastifyRequest } from "fastify";

/** Names of query parameters whose values are never logged. */
const SECRET_PARAM = /token|jwt|auth|key|secret|pass|session|sig|cookie|credential/i;

/** `url` with the values of secret-looking query parameters replaced by `[redacted]`. */
export function redactUrl(url: string): string {
  const query = url.indexOf("?");
  if (query < 0) return url;
  const params = url
    .slice(query + 1)
    .split("&")
    .map((pair) => {
      const equals = pair.indexOf("=");
      const rawName = equals < 0 ? pair : pair.slice(0, equals);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replaceAll("+", " "));
      } catch {
        // a malformed name is logged as sent, and checked as sent
      }
      return equals >= 0 && SECRET_PARAM.test(name) ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, query)}?${params.join("&")}`;
}

/** Fastify's request serializer, with {@link redactUrl} applied to the URL. */
export function serializeRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}
