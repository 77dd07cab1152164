import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, defaultJobConcurrency, loadConfig } from "./config.ts";

const SECRET = "s".repeat(32);

/** Asserts that loading `env` fails with a problem mentioning `fragment`. */
function assertRejects(env: Record<string, string | undefined>, fragment: string | RegExp): void {
  assert.throws(
    () => loadConfig(env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, "expected a ConfigError");
      const matched = err.problems.some((p) =>
        typeof fragment === "string" ? p.includes(fragment) : fragment.test(p),
      );
      assert.ok(matched, `no problem matches ${fragment}: ${err.message}`);
      return true;
    },
  );
}

describe("loadConfig defaults", () => {
  const config = loadConfig({});

  test("general", () => {
    assert.equal(config.nodeEnv, "development");
    assert.equal(config.isProduction, false);
    assert.equal(config.logLevel, "info");
  });

  test("http", () => {
    assert.deepEqual(config.http, {
      port: 8080,
      host: "0.0.0.0",
      metricsPort: null,
      metricsHost: "0.0.0.0",
      tls: null,
      h2c: false,
      h2MaxConcurrentStreams: 128,
      listenBacklog: 4096,
      bodyLimitBytes: 65536,
      headersTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      trustProxy: false,
      openapiDocs: true,
    });
  });

  test("security", () => {
    assert.deepEqual(config.security, {
      rateLimit: {
        windowMs: 10000,
        chatPerUser: 50,
        jobsPerUser: 20,
        publishPerService: 100000,
        loginPerIp: 100,
        streamsPerUser: 30,
        streamsPerIp: 0,
        streamChannelsPerUser: 120,
        presencePerUser: 60,
        historyPerUser: 60,
        perChannel: 20000,
      },
      connections: { perUser: 64, perIp: 0, leaseTtlMs: 30000 },
      corsOrigins: [],
    });
  });

  test("auth", () => {
    assert.equal(config.auth.issuer, "realtime");
    assert.equal(config.auth.audience, "realtime");
    assert.equal(config.auth.tokenTtlSeconds, 86400);
    assert.equal(config.auth.devLogin, true);
    assert.equal(config.auth.cookieName, "rt_session");
    assert.equal(config.auth.cookieSecure, false);
    assert.deepEqual(config.auth.algorithms, ["HS256"]);
    assert.equal(config.auth.jwks, null);
  });

  test("development generates a random per-process secret and flags it", () => {
    assert.equal(config.auth.secretGenerated, true);
    assert.ok(config.auth.secret.length >= 32);
    assert.notEqual(loadConfig({}).auth.secret, config.auth.secret);
  });

  test("redis: embedded mode when nothing is set", () => {
    assert.deepEqual(config.redis, {
      mode: "embedded",
      url: null,
      prefix: "realtime",
      clusterNodes: [],
      waitReplicas: 0,
      waitTimeoutMs: 500,
    });
  });

  test("limits, sse, shutdown", () => {
    assert.deepEqual(config.limits, {
      maxConnections: 10000,
      maxChannelsPerStream: 16,
      slowClientMaxBytes: 1048576,
      slowClientMaxStallMs: 10000,
      maxChatContentLength: 4000,
      maxReplays: 32,
      maxReplaysPerUser: 2,
    });
    assert.deepEqual(config.channels, {
      idleTtlMs: 600000,
      maxChannels: 100000,
      historyMaxBytes: 67108864,
      historyMaxLength: 10000,
      historyTtlSeconds: 300,
    });
    assert.deepEqual(config.sse, {
      heartbeatIntervalMs: 15000,
      retryMs: 2000,
      retryJitterMs: 3000,
    });
    assert.deepEqual(config.shutdown, { drainMs: 5000 });
  });

  test("publish", () => {
    assert.deepEqual(config.publish, { idempotencyWindowMs: 600000 });
  });

  test("presence", () => {
    assert.deepEqual(config.presence, {
      graceMs: 5000,
      ttlMs: 10000,
      refreshMs: 3000,
      snapshotMaxUsers: 1000,
    });
  });

  test("is frozen", () => {
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.limits));
  });
});

describe("loadConfig reads variables", () => {
  test("every variable reaches its field", () => {
    const config = loadConfig({
      PORT: "9000",
      HOST: "127.0.0.1",
      NODE_ENV: "test",
      LOG_LEVEL: "debug",
      JWT_SECRET: SECRET,
      JWT_ISSUER: "iss",
      JWT_AUDIENCE: "aud",
      TOKEN_TTL_SECONDS: "60",
      AUTH_DEV_LOGIN: "false",
      COOKIE_NAME: "sid",
      REDIS_URL: "redis://localhost:6379",
      REDIS_PREFIX: "rt-test",
      MAX_CONNECTIONS: "5",
      MAX_CHANNELS_PER_STREAM: "4",
      HEARTBEAT_INTERVAL_MS: "1000",
      RETRY_MS: "100",
      RETRY_JITTER_MS: "0",
      SLOW_CLIENT_MAX_BYTES: "2048",
      SLOW_CLIENT_MAX_STALL_MS: "500",
      BODY_LIMIT_BYTES: "1024",
      LISTEN_BACKLOG: "1024",
      MAX_CHAT_CONTENT_LENGTH: "10",
      MAX_REPLAYS: "3",
      MAX_REPLAYS_PER_USER: "1",
      CHANNEL_IDLE_TTL_MS: "60000",
      MAX_CHANNELS: "7",
      HISTORY_MAX_BYTES: "4096",
      HISTORY_MAX_LENGTH: "500",
      HISTORY_TTL_SECONDS: "30",
      SHUTDOWN_DRAIN_MS: "250",
      IDEMPOTENCY_WINDOW_MS: "60000",
      HTTP2: "h2c",
    });
    assert.equal(config.http.port, 9000);
    assert.equal(config.http.host, "127.0.0.1");
    assert.equal(config.http.metricsPort, null, "unset: served on the public port");
    assert.equal(config.http.metricsHost, "127.0.0.1", "defaults to HOST");
    assert.equal(config.http.h2c, true);
    assert.equal(config.http.bodyLimitBytes, 1024);
    assert.equal(config.http.listenBacklog, 1024);
    assert.equal(config.nodeEnv, "test");
    assert.equal(config.logLevel, "debug");
    assert.equal(config.auth.secret, SECRET);
    assert.equal(config.auth.secretGenerated, false);
    assert.equal(config.auth.issuer, "iss");
    assert.equal(config.auth.audience, "aud");
    assert.equal(config.auth.tokenTtlSeconds, 60);
    assert.equal(config.auth.devLogin, false);
    assert.equal(config.auth.cookieName, "sid");
    assert.equal(config.redis.mode, "standalone");
    assert.equal(config.redis.url, "redis://localhost:6379");
    assert.equal(config.redis.prefix, "rt-test");
    assert.deepEqual(config.limits, {
      maxConnections: 5,
      maxChannelsPerStream: 4,
      slowClientMaxBytes: 2048,
      slowClientMaxStallMs: 500,
      maxChatContentLength: 10,
      maxReplays: 3,
      maxReplaysPerUser: 1,
    });
    assert.deepEqual(config.channels, {
      idleTtlMs: 60000,
      maxChannels: 7,
      historyMaxBytes: 4096,
      historyMaxLength: 500,
      historyTtlSeconds: 30,
    });
    assert.deepEqual(config.sse, { heartbeatIntervalMs: 1000, retryMs: 100, retryJitterMs: 0 });
    assert.equal(config.shutdown.drainMs, 250);
    assert.equal(config.publish.idempotencyWindowMs, 60000);
  });

  test("presence timings", () => {
    const config = loadConfig({
      PRESENCE_GRACE_MS: "0",
      PRESENCE_TTL_MS: "4000",
      PRESENCE_REFRESH_MS: "1000",
      PRESENCE_SNAPSHOT_MAX_USERS: "0",
    });
    assert.deepEqual(config.presence, {
      graceMs: 0,
      ttlMs: 4000,
      refreshMs: 1000,
      snapshotMaxUsers: 0,
    });
  });

  test("an empty value counts as unset", () => {
    const config = loadConfig({ PORT: "", REDIS_URL: "", HTTP2: "", JWT_SECRET: "" });
    assert.equal(config.http.port, 8080);
    assert.equal(config.redis.mode, "embedded");
    assert.equal(config.http.h2c, false);
    assert.equal(config.auth.secretGenerated, true);
  });

  test("PORT=0 asks for a free port", () => {
    assert.equal(loadConfig({ PORT: "0" }).http.port, 0);
  });

  test("TLS with both files; the cookie becomes Secure", () => {
    const config = loadConfig({ TLS_CERT: "/c.pem", TLS_KEY: "/k.pem" });
    assert.deepEqual(config.http.tls, { certFile: "/c.pem", keyFile: "/k.pem" });
    assert.equal(config.auth.cookieSecure, true);
  });

  test("cluster nodes select cluster mode", () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: "a:7000, b:7001,[::1]:7002" });
    assert.equal(config.redis.mode, "cluster");
    assert.deepEqual(config.redis.clusterNodes, [
      { host: "a", port: 7000 },
      { host: "b", port: 7001 },
      { host: "::1", port: 7002 },
    ]);
  });

  test("OPENAPI_DOCS: on outside production, off in production unless turned on", () => {
    assert.equal(loadConfig({ NODE_ENV: "test" }).http.openapiDocs, true);
    assert.equal(loadConfig({ OPENAPI_DOCS: "false" }).http.openapiDocs, false);
    const production = { NODE_ENV: "production", JWT_SECRET: SECRET };
    assert.equal(loadConfig(production).http.openapiDocs, false);
    assert.equal(loadConfig({ ...production, OPENAPI_DOCS: "true" }).http.openapiDocs, true);
    assert.equal(loadConfig({ ...production, OPENAPI_DOCS: "1" }).http.openapiDocs, true);
    assertRejects({ ...production, OPENAPI_DOCS: "yes" }, 'OPENAPI_DOCS must be "true" or "false"');
  });

  test("AUTH_DEV_LOGIN accepts 1/0 as well", () => {
    assert.equal(loadConfig({ AUTH_DEV_LOGIN: "0" }).auth.devLogin, false);
    assert.equal(loadConfig({ AUTH_DEV_LOGIN: "1" }).auth.devLogin, true);
  });
});

describe("loadConfig validation", () => {
  for (const bad of ["1e3", "-1", "abc", "1.5", " 80", "0x10", "+5", "99999999999999999999"]) {
    test(`rejects integer ${JSON.stringify(bad)}`, () => {
      assertRejects({ MAX_CONNECTIONS: bad }, "MAX_CONNECTIONS must be a decimal integer");
    });
  }

  test("rejects zero where a positive integer is required", () => {
    assertRejects({ HEARTBEAT_INTERVAL_MS: "0" }, "HEARTBEAT_INTERVAL_MS");
  });

  test("every integer variable is validated", () => {
    const names = [
      "PORT",
      "METRICS_PORT",
      "HTTP2_MAX_CONCURRENT_STREAMS",
      "LISTEN_BACKLOG",
      "TOKEN_TTL_SECONDS",
      "MAX_CONNECTIONS",
      "MAX_CHANNELS_PER_STREAM",
      "HEARTBEAT_INTERVAL_MS",
      "RETRY_MS",
      "RETRY_JITTER_MS",
      "SLOW_CLIENT_MAX_BYTES",
      "SLOW_CLIENT_MAX_STALL_MS",
      "BODY_LIMIT_BYTES",
      "MAX_CHAT_CONTENT_LENGTH",
      "SHUTDOWN_DRAIN_MS",
      "PRESENCE_GRACE_MS",
      "PRESENCE_TTL_MS",
      "PRESENCE_REFRESH_MS",
      "PRESENCE_SNAPSHOT_MAX_USERS",
      "HEADERS_TIMEOUT_MS",
      "REQUEST_TIMEOUT_MS",
      "RATE_LIMIT_WINDOW_MS",
      "RATE_LIMIT_CHAT_MAX",
      "RATE_LIMIT_JOBS_MAX",
      "RATE_LIMIT_PUBLISH_MAX",
      "RATE_LIMIT_LOGIN_MAX",
      "RATE_LIMIT_STREAMS_MAX",
      "RATE_LIMIT_STREAM_CHANNELS_MAX",
      "RATE_LIMIT_STREAMS_PER_IP_MAX",
      "RATE_LIMIT_PRESENCE_MAX",
      "CHANNEL_PUBLISH_MAX",
      "MAX_CONNECTIONS_PER_USER",
      "MAX_CONNECTIONS_PER_IP",
      "CONNECTION_LEASE_TTL_MS",
      "IDEMPOTENCY_WINDOW_MS",
      "MAX_REPLAYS",
      "MAX_REPLAYS_PER_USER",
      "CHANNEL_IDLE_TTL_MS",
      "MAX_CHANNELS",
      "HISTORY_MAX_BYTES",
      "JWT_JWKS_CACHE_MS",
      "JWT_JWKS_COOLDOWN_MS",
    ];
    const env = Object.fromEntries(names.map((n) => [n, "x"]));
    try {
      loadConfig(env);
      assert.fail("expected a ConfigError");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      // All problems are reported at once, one per variable.
      assert.equal(err.problems.length, names.length);
      for (const name of names) assert.match(err.message, new RegExp(`\\b${name} must`));
    }
  });

  test("METRICS_PORT: a port of its own, on METRICS_HOST", () => {
    const config = loadConfig({ PORT: "9000", METRICS_PORT: "9100", METRICS_HOST: "10.0.0.5" });
    assert.equal(config.http.metricsPort, 9100);
    assert.equal(config.http.metricsHost, "10.0.0.5");
    assert.equal(loadConfig({ PORT: "0", METRICS_PORT: "0" }).http.metricsPort, 0);
    assertRejects({ PORT: "9000", METRICS_PORT: "9000" }, "METRICS_PORT must differ from PORT");
    assertRejects({ METRICS_PORT: "65536" }, "METRICS_PORT must be a decimal integer in 0..65535");
    assertRejects({ METRICS_PORT: "x" }, "METRICS_PORT");
  });

  test("rejects presence timings that would reap live pods", () => {
    assertRejects({ PRESENCE_TTL_MS: "999" }, "PRESENCE_TTL_MS must be a decimal integer >= 1000");
    assertRejects(
      { PRESENCE_TTL_MS: "6000", PRESENCE_REFRESH_MS: "3000" },
      "PRESENCE_REFRESH_MS (3000) must be under half of PRESENCE_TTL_MS (6000)",
    );
    assertRejects({ PRESENCE_REFRESH_MS: "-1" }, "PRESENCE_REFRESH_MS");
  });

  test("rejects history retention it cannot keep", () => {
    assertRejects(
      { CHANNEL_IDLE_TTL_MS: "60000", HISTORY_TTL_SECONDS: "61" },
      "HISTORY_TTL_SECONDS (61) must not exceed CHANNEL_IDLE_TTL_MS (60000) in seconds",
    );
    assert.equal(
      loadConfig({ CHANNEL_IDLE_TTL_MS: "60000", HISTORY_TTL_SECONDS: "60" }).channels
        .historyTtlSeconds,
      60,
    );
    assert.equal(
      loadConfig({ CHANNEL_IDLE_TTL_MS: "2500" }).channels.historyTtlSeconds,
      2,
      "unset: the default within a shorter idle TTL",
    );
    assertRejects({ HISTORY_MAX_LENGTH: "0" }, "HISTORY_MAX_LENGTH");
    assertRejects({ HISTORY_MAX_LENGTH: "1000001" }, "HISTORY_MAX_LENGTH");
    assertRejects({ HISTORY_TTL_SECONDS: "0" }, "HISTORY_TTL_SECONDS");
  });

  test("rejects an IDEMPOTENCY_WINDOW_MS under a second or over a day", () => {
    for (const bad of ["0", "999", "86400001"]) {
      assertRejects(
        { IDEMPOTENCY_WINDOW_MS: bad },
        "IDEMPOTENCY_WINDOW_MS must be a decimal integer in 1000..86400000",
      );
    }
    assert.equal(
      loadConfig({ IDEMPOTENCY_WINDOW_MS: "86400000" }).publish.idempotencyWindowMs,
      86400000,
    );
  });

  test("rejects a PORT above 65535", () => {
    assertRejects({ PORT: "65536" }, "PORT must be a decimal integer in 0..65535");
  });

  test("rejects an unknown NODE_ENV", () => {
    assertRejects({ NODE_ENV: "prod" }, "NODE_ENV must be one of");
  });

  test("rejects an unknown LOG_LEVEL", () => {
    assertRejects({ LOG_LEVEL: "verbose" }, "LOG_LEVEL must be one of");
  });

  test("rejects a non-boolean AUTH_DEV_LOGIN", () => {
    assertRejects({ AUTH_DEV_LOGIN: "yes please" }, "AUTH_DEV_LOGIN");
  });

  test("rejects a short JWT_SECRET in any environment, without echoing it", () => {
    try {
      loadConfig({ JWT_SECRET: "hunter2-the-secret" });
      assert.fail("expected a ConfigError");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /JWT_SECRET must be at least 32 characters/);
      assert.doesNotMatch(err.message, /hunter2/);
    }
  });

  test("rejects TLS_CERT without TLS_KEY and vice versa", () => {
    assertRejects({ TLS_CERT: "/c.pem" }, "TLS_CERT and TLS_KEY must be set together");
    assertRejects({ TLS_KEY: "/k.pem" }, "TLS_CERT and TLS_KEY must be set together");
  });

  test("rejects HTTP2 values other than h2c", () => {
    assertRejects({ HTTP2: "h2" }, 'HTTP2 must be "h2c" or unset');
    assertRejects({ HTTP2: "true" }, 'HTTP2 must be "h2c" or unset');
  });

  test("rejects h2c together with TLS", () => {
    assertRejects({ HTTP2: "h2c", TLS_CERT: "/c", TLS_KEY: "/k" }, "HTTP2=h2c cannot be combined");
  });

  test("rejects a REDIS_URL that is not redis:// without echoing it", () => {
    try {
      loadConfig({ REDIS_URL: "http://user:pa55word@host" });
      assert.fail("expected a ConfigError");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
      assert.doesNotMatch(err.message, /pa55word/);
    }
    assertRejects({ REDIS_URL: "not a url" }, "REDIS_URL");
  });

  test("rejects malformed REDIS_CLUSTER_NODES", () => {
    for (const bad of ["a", "a:", ":7000", "a:0", "a:70000", "a:7000,,b:7001", "a:x"]) {
      assertRejects({ REDIS_CLUSTER_NODES: bad }, "REDIS_CLUSTER_NODES");
    }
  });

  test("REDIS_WAIT_REPLICAS and its timeout: read, and bounded below the command timeout", () => {
    const config = loadConfig({ REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "800" });
    assert.equal(config.redis.waitReplicas, 1);
    assert.equal(config.redis.waitTimeoutMs, 800);
    assertRejects({ REDIS_WAIT_REPLICAS: "-1" }, "REDIS_WAIT_REPLICAS");
    assertRejects({ REDIS_WAIT_TIMEOUT_MS: "2000" }, "REDIS_WAIT_TIMEOUT_MS");
    assertRejects({ REDIS_WAIT_TIMEOUT_MS: "0" }, "REDIS_WAIT_TIMEOUT_MS");
  });

  test("rejects a REDIS_PREFIX or COOKIE_NAME that would need escaping", () => {
    assertRejects({ REDIS_PREFIX: "a b" }, "REDIS_PREFIX");
    assertRejects({ REDIS_PREFIX: "a{x}" }, "REDIS_PREFIX");
    assertRejects({ COOKIE_NAME: "a=b" }, "COOKIE_NAME");
    assertRejects({ COOKIE_NAME: "a;b" }, "COOKIE_NAME");
  });
});

describe("loadConfig production rules", () => {
  test("requires JWT_SECRET", () => {
    assertRejects({ NODE_ENV: "production" }, "JWT_SECRET is required in production");
  });

  test("requires at least 32 characters", () => {
    assertRejects({ NODE_ENV: "production", JWT_SECRET: "x".repeat(31) }, "at least 32");
  });

  test("dev login is off unless AUTH_DEV_LOGIN=true; the cookie is Secure", () => {
    const config = loadConfig({ NODE_ENV: "production", JWT_SECRET: SECRET });
    assert.equal(config.isProduction, true);
    assert.equal(config.auth.devLogin, false);
    assert.equal(config.auth.secretGenerated, false);
    assert.equal(config.auth.cookieSecure, true);
    const opted = loadConfig({
      NODE_ENV: "production",
      JWT_SECRET: SECRET,
      AUTH_DEV_LOGIN: "true",
    });
    assert.equal(opted.auth.devLogin, true);
  });
});

describe("loadConfig identity providers (JWKS)", () => {
  const JWKS = "https://idp.example.com/.well-known/jwks.json";

  test("JWT_JWKS_URL: the set, its timings, and the asymmetric algorithms by default", () => {
    const config = loadConfig({ JWT_JWKS_URL: JWKS });
    assert.deepEqual(config.auth.jwks, {
      url: JWKS,
      cacheMaxAgeMs: 600000,
      cooldownMs: 30000,
      timeoutMs: 5000,
    });
    assert.deepEqual(config.auth.algorithms, ["HS256", "RS256", "ES256", "EdDSA"]);
    const tuned = loadConfig({
      JWT_JWKS_URL: JWKS,
      JWT_JWKS_CACHE_MS: "60000",
      JWT_JWKS_COOLDOWN_MS: "5000",
      JWT_ALGORITHMS: " RS256, PS256 ,ES384,EdDSA,RS256,HS256",
    });
    assert.equal(tuned.auth.jwks?.cacheMaxAgeMs, 60000);
    assert.equal(tuned.auth.jwks?.cooldownMs, 5000);
    assert.deepEqual(tuned.auth.algorithms, ["RS256", "PS256", "ES384", "EdDSA", "HS256"]);
  });

  test("JWT_ALGORITHMS names only JWS algorithms; none is never one", () => {
    for (const bad of ["none", "NONE", "HS256,none", "rs256", "RS257", "HS256,", "A256GCM"]) {
      assertRejects({ JWT_JWKS_URL: JWKS, JWT_ALGORITHMS: bad }, "JWT_ALGORITHMS: ");
    }
    assertRejects({ JWT_JWKS_URL: JWKS, JWT_ALGORITHMS: "none" }, '"none" is not one of HS256');
  });

  test("asymmetric algorithms need JWT_JWKS_URL, and a JWKS needs one of them", () => {
    assertRejects(
      { JWT_ALGORITHMS: "HS256,RS256" },
      "JWT_ALGORITHMS lists RS256, which need JWT_JWKS_URL",
    );
    assertRejects(
      { JWT_JWKS_URL: JWKS, JWT_ALGORITHMS: "HS256" },
      "JWT_JWKS_URL is set but JWT_ALGORITHMS allows no algorithm it verifies",
    );
    assert.deepEqual(loadConfig({ JWT_ALGORITHMS: "HS256,HS512" }).auth.algorithms, [
      "HS256",
      "HS512",
    ]);
  });

  test("dev login needs HS256 (its tokens are HS256)", () => {
    assertRejects(
      { JWT_JWKS_URL: JWKS, JWT_ALGORITHMS: "RS256" },
      "JWT_ALGORITHMS must include HS256 while AUTH_DEV_LOGIN is on",
    );
    const idpOnly = loadConfig({
      JWT_JWKS_URL: JWKS,
      JWT_ALGORITHMS: "RS256",
      AUTH_DEV_LOGIN: "false",
    });
    assert.deepEqual(idpOnly.auth.algorithms, ["RS256"]);
  });

  for (const bad of [
    "not a url",
    "ftp://idp.example.com/jwks",
    "file:///etc/jwks.json",
    "idp.example.com/jwks",
  ]) {
    test(`rejects JWT_JWKS_URL=${bad}`, () => {
      assertRejects({ JWT_JWKS_URL: bad }, "JWT_JWKS_URL must be an http(s) URL");
    });
  }

  test("rejects credentials in JWT_JWKS_URL without echoing them", () => {
    assert.throws(
      () => loadConfig({ JWT_JWKS_URL: "https://user:hunter2@idp.example.com/jwks" }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /JWT_JWKS_URL must not contain credentials/);
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      },
    );
  });

  test("rejects JWKS timings out of range", () => {
    assertRejects(
      { JWT_JWKS_COOLDOWN_MS: "999" },
      "JWT_JWKS_COOLDOWN_MS must be a decimal integer in 1000..3600000",
    );
    assertRejects(
      { JWT_JWKS_CACHE_MS: "86400001" },
      "JWT_JWKS_CACHE_MS must be a decimal integer in 1000..86400000",
    );
  });

  test("http is fine outside production", () => {
    const url = "http://idp.internal:8080/jwks";
    assert.equal(loadConfig({ JWT_JWKS_URL: url }).auth.jwks?.url, url);
  });
});

describe("loadConfig production rules with a JWKS", () => {
  const JWKS = "https://idp.example.com/.well-known/jwks.json";

  test("JWT_SECRET may be left out: a random per-process key signs, no one else has it", () => {
    const config = loadConfig({ NODE_ENV: "production", JWT_JWKS_URL: JWKS });
    assert.equal(config.auth.secretGenerated, true);
    assert.ok(config.auth.secret.length >= 32);
    assert.equal(config.auth.devLogin, false);
    assert.deepEqual(config.auth.algorithms, ["HS256", "RS256", "ES256", "EdDSA"]);
    // With a secret, both kinds of token verify on every pod.
    const both = loadConfig({ NODE_ENV: "production", JWT_JWKS_URL: JWKS, JWT_SECRET: SECRET });
    assert.equal(both.auth.secretGenerated, false);
    assert.equal(both.auth.secret, SECRET);
  });

  test("without JWT_SECRET: no dev login, and HS* cannot be asked for", () => {
    assertRejects(
      { NODE_ENV: "production", JWT_JWKS_URL: JWKS, AUTH_DEV_LOGIN: "true" },
      "AUTH_DEV_LOGIN=true needs JWT_SECRET in production",
    );
    assertRejects(
      { NODE_ENV: "production", JWT_JWKS_URL: JWKS, JWT_ALGORITHMS: "RS256,HS256" },
      "JWT_ALGORITHMS lists HS256 but JWT_SECRET is not set",
    );
    const config = loadConfig({
      NODE_ENV: "production",
      JWT_JWKS_URL: JWKS,
      JWT_ALGORITHMS: "RS256",
    });
    assert.deepEqual(config.auth.algorithms, ["RS256"]);
  });

  test("the JWKS must come over https, unless from a loopback host", () => {
    assertRejects(
      { NODE_ENV: "production", JWT_JWKS_URL: "http://idp.example.com/jwks" },
      "JWT_JWKS_URL must be https in production",
    );
    assertRejects(
      { NODE_ENV: "production", JWT_JWKS_URL: "http://10.0.0.7/jwks" },
      "JWT_JWKS_URL must be https in production",
    );
    for (const url of [
      "http://127.0.0.1:9000/jwks",
      "http://localhost/jwks",
      "http://[::1]:9000/jwks",
    ]) {
      assert.equal(
        loadConfig({ NODE_ENV: "production", JWT_JWKS_URL: url }).auth.jwks?.url,
        new URL(url).href,
      );
    }
  });

  test("a bad JWT_JWKS_URL does not also waive JWT_SECRET's own problem", () => {
    assertRejects(
      { NODE_ENV: "production", JWT_JWKS_URL: "nope" },
      "JWT_JWKS_URL must be an http(s) URL",
    );
    assertRejects(
      { NODE_ENV: "production", JWT_JWKS_URL: "nope" },
      "JWT_SECRET is required in production",
    );
  });
});

describe("loadConfig jobs", () => {
  test("defaults", () => {
    assert.deepEqual(loadConfig({}).jobs, {
      maxPerUser: 2,
      concurrency: defaultJobConcurrency(),
      frames: 24,
      frameSize: 320,
      progressIntervalMs: 250,
      maxAttempts: 2,
      lockMs: 30000,
      resultTtlSeconds: 3600,
      mediaDir: null,
    });
    assert.ok(defaultJobConcurrency() >= 1 && defaultJobConcurrency() <= 4);
  });

  test("every JOBS_ variable reaches its field", () => {
    const config = loadConfig({
      JOBS_MAX_PER_USER: "5",
      JOBS_CONCURRENCY: "3",
      JOBS_FRAMES: "12",
      JOBS_FRAME_SIZE: "64",
      JOBS_PROGRESS_INTERVAL_MS: "0",
      JOBS_MAX_ATTEMPTS: "1",
      JOBS_LOCK_MS: "1000",
      JOBS_RESULT_TTL_SECONDS: "60",
      JOBS_MEDIA_DIR: "/tmp/media",
    });
    assert.deepEqual(config.jobs, {
      maxPerUser: 5,
      concurrency: 3,
      frames: 12,
      frameSize: 64,
      progressIntervalMs: 0,
      maxAttempts: 1,
      lockMs: 1000,
      resultTtlSeconds: 60,
      mediaDir: "/tmp/media",
    });
  });

  test("rejects out-of-range job settings, each by name", () => {
    assertRejects({ JOBS_MAX_PER_USER: "0" }, "JOBS_MAX_PER_USER");
    assertRejects(
      { JOBS_CONCURRENCY: "65" },
      "JOBS_CONCURRENCY must be a decimal integer in 1..64",
    );
    assertRejects({ JOBS_FRAMES: "601" }, "JOBS_FRAMES");
    assertRejects({ JOBS_FRAME_SIZE: "8" }, "JOBS_FRAME_SIZE");
    assertRejects({ JOBS_MAX_ATTEMPTS: "11" }, "JOBS_MAX_ATTEMPTS");
    assertRejects({ JOBS_LOCK_MS: "100" }, "JOBS_LOCK_MS");
    assertRejects({ JOBS_PROGRESS_INTERVAL_MS: "-1" }, "JOBS_PROGRESS_INTERVAL_MS");
  });
});

describe("loadConfig security", () => {
  test("every security variable reaches its field", () => {
    const config = loadConfig({
      HEADERS_TIMEOUT_MS: "500",
      REQUEST_TIMEOUT_MS: "1000",
      TRUST_PROXY: "2",
      RATE_LIMIT_WINDOW_MS: "1000",
      RATE_LIMIT_CHAT_MAX: "1",
      RATE_LIMIT_JOBS_MAX: "2",
      RATE_LIMIT_PUBLISH_MAX: "3",
      RATE_LIMIT_LOGIN_MAX: "0",
      RATE_LIMIT_STREAMS_MAX: "8",
      RATE_LIMIT_STREAMS_PER_IP_MAX: "9",
      RATE_LIMIT_STREAM_CHANNELS_MAX: "11",
      RATE_LIMIT_PRESENCE_MAX: "10",
      RATE_LIMIT_HISTORY_MAX: "12",
      CHANNEL_PUBLISH_MAX: "5",
      MAX_CONNECTIONS_PER_USER: "6",
      MAX_CONNECTIONS_PER_IP: "7",
      CONNECTION_LEASE_TTL_MS: "900",
      CORS_ORIGINS: "https://app.example.com, http://localhost:5173,https://app.example.com",
    });
    assert.equal(config.http.headersTimeoutMs, 500);
    assert.equal(config.http.requestTimeoutMs, 1000);
    assert.equal(config.http.trustProxy, 2);
    assert.deepEqual(config.security, {
      rateLimit: {
        windowMs: 1000,
        chatPerUser: 1,
        jobsPerUser: 2,
        publishPerService: 3,
        loginPerIp: 0,
        streamsPerUser: 8,
        streamsPerIp: 9,
        streamChannelsPerUser: 11,
        presencePerUser: 10,
        historyPerUser: 12,
        perChannel: 5,
      },
      connections: { perUser: 6, perIp: 7, leaseTtlMs: 900 },
      corsOrigins: ["https://app.example.com", "http://localhost:5173"],
    });
  });

  test("TRUST_PROXY takes proxy addresses and CIDRs", () => {
    const config = loadConfig({ TRUST_PROXY: "10.0.0.0/8, 127.0.0.1,::1" });
    assert.deepEqual(config.http.trustProxy, ["10.0.0.0/8", "127.0.0.1", "::1"]);
    assert.equal(loadConfig({ TRUST_PROXY: "false" }).http.trustProxy, false);
  });

  for (const bad of ["true", "11", "10.0.0.0/33", "proxy.local", "1.2.3.4,"]) {
    test(`rejects TRUST_PROXY=${bad}`, () => assertRejects({ TRUST_PROXY: bad }, "TRUST_PROXY"));
  }

  for (const bad of [
    "*",
    "null",
    "https://*.example.com",
    "https://a.example/path",
    "ftp://a",
    "a.com",
  ]) {
    test(`rejects CORS_ORIGINS=${bad}`, () => assertRejects({ CORS_ORIGINS: bad }, "CORS_ORIGINS"));
  }

  test("rejects a headers timeout above the request timeout", () => {
    assertRejects(
      { HEADERS_TIMEOUT_MS: "2000", REQUEST_TIMEOUT_MS: "1000" },
      "HEADERS_TIMEOUT_MS (2000) must not exceed REQUEST_TIMEOUT_MS (1000)",
    );
  });
});

describe("loadConfig access", () => {
  test("defaults: open, no backend, 30 s cache, 2 s timeout, 32 requests at once", () => {
    const { access } = loadConfig({});
    assert.deepEqual(access, {
      defaultAccess: "open",
      authzUrl: null,
      authzCacheMs: 30_000,
      authzTimeoutMs: 2_000,
      authzMaxConcurrency: 32,
    });
  });

  test("reads CHANNEL_DEFAULT_ACCESS and AUTHZ_*", () => {
    const { access } = loadConfig({
      CHANNEL_DEFAULT_ACCESS: "closed",
      AUTHZ_URL: "http://authz.internal:8080/realtime/authorize",
      AUTHZ_CACHE_MS: "5000",
      AUTHZ_TIMEOUT_MS: "250",
      AUTHZ_MAX_CONCURRENCY: "8",
    });
    assert.deepEqual(access, {
      defaultAccess: "closed",
      authzUrl: "http://authz.internal:8080/realtime/authorize",
      authzCacheMs: 5_000,
      authzTimeoutMs: 250,
      authzMaxConcurrency: 8,
    });
  });

  test("refuses a bad default, a URL that is not http(s), one with credentials, a cache under 1 s", () => {
    assertRejects({ CHANNEL_DEFAULT_ACCESS: "maybe" }, "CHANNEL_DEFAULT_ACCESS");
    assertRejects({ AUTHZ_URL: "ftp://authz/x" }, "AUTHZ_URL");
    assertRejects({ AUTHZ_URL: "not a url" }, "AUTHZ_URL");
    assertRejects({ AUTHZ_URL: "https://user:pw@authz/x" }, "AUTHZ_URL must not carry credentials");
    assertRejects({ AUTHZ_CACHE_MS: "10" }, "AUTHZ_CACHE_MS");
  });
});
