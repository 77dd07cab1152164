/**
 * Service side of the end-to-end tests: the web app built (once, shared by parallel test
 * files) and the real service started in-process, also on a given port for a restart.
 */
import type { AddressInfo } from "node:net";
import type { Broker } from "@realtime/server";
import { buildApp, type Service } from "../apps/service/src/app.ts";
import { loadConfig } from "../apps/service/src/config.ts";
import { TEST_SECRET } from "../apps/service/src/testing/harness.ts";
import { ensureWebBuilt } from "../apps/web/build.ts";

/** Builds apps/web/dist unless it is up to date (the service serves it at `/`). */
export async function prepareWebApp(): Promise<void> {
  await ensureWebBuilt();
}

/**
 * The service on `port` (the harness always picks a free one; a restart must come back where
 * the browser is waiting), with the harness' test settings and secret, so a session cookie
 * from before a restart is still valid.
 */
export async function startOnPort(
  port: number,
  broker: Broker,
  env: Record<string, string> = {},
  /** Runs once the service is built, before it listens (e.g. to publish what clients missed). */
  beforeListen?: (service: Service) => Promise<void>,
): Promise<Service> {
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    JWT_SECRET: TEST_SECRET,
    HOST: "127.0.0.1",
    PORT: String(port),
    ...env,
  });
  const service = await buildApp(config, { logger: false, broker });
  await beforeListen?.(service);
  await service.app.listen({ port, host: "127.0.0.1" });
  const address = service.app.server.address() as AddressInfo;
  if (address.port !== port) throw new Error(`listening on ${address.port}, not ${port}`);
  return service;
}
