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
