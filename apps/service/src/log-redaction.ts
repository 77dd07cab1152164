/**
 * What the request log may say about a request. Tokens travel only in `Authorization` or the
 * session cookie (both redacted by pino), but a client can still put one in a URL — the
 * request is refused, and its URL would be logged as sent. Anything shaped like a JWT, wherever
 * it is in the URL (a path segment, a query name or value, whatever the parameter is called),
 * and the values of query parameters whose name says they carry a secret are written as
 * `[redacted]`.
 */
import type { FastifyRequest } from "fastify";

/** Names of query parameters whose values are never logged. */
const SECRET_PARAM = /token|jwt|auth|key|secret|pass|session|sig|cookie|credential/i;

/**
 * A JWT as it may appear in a URL: a header that is base64url JSON (`{"` is `eyJ`), then two
 * to four more base64url segments (a JWS has three in all, a JWE five; the payload or the
 * signature may be empty), separated by dots, percent-encoded or not.
 */
const JWT_SHAPED = /eyJ[A-Za-z0-9_-]{5,}(?:(?:\.|%2[Ee])[A-Za-z0-9_-]*){2,4}/g;

/**
 * `url` with every JWT-shaped run, and the values of secret-looking query parameters,
 * replaced by `[redacted]`.
 */
export function redactUrl(url: string): string {
  return redactSecretParams(url.replace(JWT_SHAPED, "[redacted]"));
}

function redactSecretParams(url: string): string {
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
