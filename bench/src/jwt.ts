/** HS256 tokens the service accepts (same claims as its auth module), signed with node:crypto. */
import { createHmac } from "node:crypto";

export const BENCH_SECRET = "bench-secret-bench-secret-bench-secret-0123";

function sign(claims: Record<string, unknown>, secret: string): string {
  const now = Math.floor(Date.now() / 1000);
  const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT" })).toString("base64url");
  const body = Buffer.from(
    JSON.stringify({ iss: "realtime", aud: "realtime", iat: now, exp: now + 86_400, ...claims }),
  ).toString("base64url");
  const mac = createHmac("sha256", secret).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${mac}`;
}

/** A user token (subscribes to `channel:*` rooms and its own `user:<id>`). */
export function userToken(userId: string, secret = BENCH_SECRET): string {
  return sign({ sub: userId, name: userId }, secret);
}

/** A service token with the `publish` scope (POST /api/publish). */
export function publisherToken(secret = BENCH_SECRET): string {
  return sign({ sub: "svc:bench", scope: "publish" }, secret);
}

/** The claims of a token {@link sign} made with `secret` (signature and `exp` checked), else null. */
export function verifyToken(token: string, secret = BENCH_SECRET): Record<string, unknown> | null {
  const [header, body, mac] = token.split(".");
  if (header === undefined || body === undefined || mac === undefined) return null;
  const expected = createHmac("sha256", secret).update(`${header}.${body}`).digest("base64url");
  if (expected !== mac) return null;
  const claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as {
    exp?: number;
  } & Record<string, unknown>;
  return typeof claims.exp === "number" && claims.exp * 1000 > Date.now() ? claims : null;
}
