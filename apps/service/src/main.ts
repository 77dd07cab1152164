/** Starts the service: `npm start` (embedded mode unless REDIS_URL is set). */
import { buildApp } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`realtime: ${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}

const service = await buildApp(config);
const { app } = service;
if (config.auth.secretGenerated && config.auth.jwks !== null) {
  app.log.info(
    "JWT_SECRET is not set: tokens are verified with the JWKS; HS256 tokens only with a random key of this process",
  );
} else if (config.auth.secretGenerated) {
  app.log.warn("JWT_SECRET is not set: using a random key; tokens end with this process");
}
const { metricsApp } = service;
if (metricsApp) {
  // First, so metrics are there by the time the pod reports ready.
  await metricsApp.listen({ port: config.http.metricsPort ?? 0, host: config.http.metricsHost });
} else if (config.isProduction) {
  app.log.warn(
    "METRICS_PORT is not set: /metrics is served on the public port; deny it at the proxy or set METRICS_PORT",
  );
}
await app.listen({
  port: config.http.port,
  host: config.http.host,
  backlog: config.http.listenBacklog,
});
app.log.info(
  {
    mode: config.redis.mode,
    protocol: config.http.tls ? "h2+http/1.1 (TLS)" : config.http.h2c ? "h2c" : "http/1.1",
  },
  "realtime is ready",
);

let signalled = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (signalled) {
      app.log.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    signalled = true;
    app.log.info({ drainMs: config.shutdown.drainMs }, `${signal}: draining`);
    service.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
