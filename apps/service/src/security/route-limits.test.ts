/**
 * Every route that publishes, mints credentials, opens a stream or reads presence or history declares its
 * rate limit on itself (`config: { limit }`), so none can lose it by being renamed or added
 * without one: the limits each route of the real app got, from the limiter's own record. How
 * the limits behave is in rate-limit.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildApp } from "../app.ts";
import { loadConfig } from "../config.ts";

const ENV = {
  NODE_ENV: "test",
  LOG_LEVEL: "silent",
  JWT_SECRET: "route-limits-secret-route-limits-secret-0",
  JOBS_CONCURRENCY: "1",
};

async function limitsOf(env: Record<string, string> = {}) {
  const service = await buildApp(loadConfig({ ...ENV, ...env }), { logger: false });
  try {
    const api = [...service.security.rateLimitedRoutes].filter(([route]) =>
      route.includes(" /api/"),
    );
    return new Map(api.map(([route, limits]) => [route, [...limits]]));
  } finally {
    await service.shutdown(0);
  }
}

describe("routes declare their rate limits", () => {
  it("every POST but logout, stream opens, presence and history reads are limited", async () => {
    const routes = await limitsOf({ RATE_LIMIT_STREAMS_PER_IP_MAX: "5" });
    const limited = Object.fromEntries([...routes].filter(([, limits]) => limits.length > 0));
    assert.deepEqual(limited, {
      "POST /api/auth/dev-login": ["login"],
      "GET /api/events": ["streams", "streams_per_ip", "stream_channels"],
      "POST /api/chat/messages": ["chat", "channel"],
      "POST /api/publish": ["publish", "channel"],
      "GET /api/channels/:channel/presence": ["presence"],
      "GET /api/channels/:channel/messages": ["history"],
      "POST /api/generate/video": ["jobs"],
    });
    // A new POST route under /api/ fails here until it declares a limit (or is added above).
    for (const [route, limits] of routes) {
      if (route.startsWith("POST ") && route !== "POST /api/auth/logout") {
        assert.notDeepEqual(limits, [], `${route} declares no limit`);
      }
    }
    assert.deepEqual(routes.get("POST /api/auth/logout"), []);
    assert.deepEqual(routes.get("GET /api/jobs/:jobId"), []);
  });

  it("a limit set to 0 is off; the others stay", async () => {
    const routes = await limitsOf({
      RATE_LIMIT_CHAT_MAX: "0",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "0",
      CHANNEL_PUBLISH_MAX: "0",
    });
    assert.deepEqual(routes.get("POST /api/chat/messages"), []);
    assert.deepEqual(routes.get("POST /api/publish"), ["publish"]);
    // RATE_LIMIT_STREAMS_PER_IP_MAX is off by default.
    assert.deepEqual(routes.get("GET /api/events"), ["streams"]);
  });
});
