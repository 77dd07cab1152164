/**
 * The real service in-process on loopback for integration tests, through the service's entry
 * point (`@realtime/service`): on a free port, or on a given one (a restart must come back where
 * the client is waiting), with the test settings and a secret every start shares, so a token or
 * session cookie from before a restart is still valid.
 */
import type { AddressInfo } from "node:net";
import type { Broker, PresenceStore } from "@realtime/server";
import { buildApp, loadConfig, type Service } from "@realtime/service";
import { ensureWebBuilt } from "../../../apps/web/build.ts";

export const TEST_SECRET = "test-secret-test-secret-test-secret-0123";

export interface RunningService {
  readonly service: Service;
  readonly port: number;
  /** `http://127.0.0.1:<port>` (or https when TLS is configured). */
  readonly url: string;
  /** `http://127.0.0.1:<port>` of the metrics listener when `METRICS_PORT` is set, else null. */
  readonly metricsUrl: string | null;
  /** Signs in through the dev login and returns the token and user. */
  login(name: string): Promise<{ token: string; user: { id: string; name: string } }>;
  /** POSTs JSON with a bearer token (and `headers`); resolves with status, parsed body, headers. */
  post(
    path: string,
    token: string | null,
    body: unknown,
    headers?: Readonly<Record<string, string>>,
  ): Promise<{ status: number; body: unknown; headers: Record<string, unknown> }>;
  stop(): Promise<void>;
}

export interface StartServiceOptions {
  readonly broker?: Broker;
  readonly presenceStore?: PresenceStore;
  /** The hub's randomness (`BuildOptions.random`): pinned, a drain closes each stream when known. */
  readonly random?: () => number;
  /** Listen on this port (default: a free one). */
  readonly port?: number;
  /** Runs once the service is built, before it listens (e.g. to publish what clients missed). */
  readonly beforeListen?: (service: Service) => Promise<void>;
}

export async function startService(
  env: Record<string, string> = {},
  { port: fixedPort = 0, beforeListen, ...deps }: StartServiceOptions = {},
): Promise<RunningService> {
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    JWT_SECRET: TEST_SECRET,
    HOST: "127.0.0.1",
    PORT: String(fixedPort),
    ...env,
  });
  const service = await buildApp(config, { logger: false, ...deps });
  let metricsUrl: string | null = null;
  if (service.metricsApp) {
    await service.metricsApp.listen({ port: 0, host: "127.0.0.1" });
    const { port: metricsPort } = service.metricsApp.server.address() as AddressInfo;
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
  }
  await beforeListen?.(service);
  await service.app.listen({ port: fixedPort, host: "127.0.0.1" });
  const { port } = service.app.server.address() as AddressInfo;
  if (fixedPort !== 0 && port !== fixedPort)
    throw new Error(`listening on ${port}, not ${fixedPort}`);
  const url = `${config.http.tls ? "https" : "http"}://127.0.0.1:${port}`;

  async function post(
    path: string,
    token: string | null,
    body: unknown,
    headers: Readonly<Record<string, string>> = {},
  ) {
    const response = await service.app.inject({
      method: "POST",
      url: path,
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      payload: JSON.stringify(body),
    });
    return {
      status: response.statusCode,
      body: response.body ? (JSON.parse(response.body) as unknown) : null,
      headers: response.headers as Record<string, unknown>,
    };
  }

  return {
    service,
    port,
    url,
    metricsUrl,
    post,
    async login(name: string) {
      const { status, body } = await post("/api/auth/dev-login", null, { name });
      if (status !== 200) throw new Error(`dev-login failed: ${status} ${JSON.stringify(body)}`);
      return body as { token: string; user: { id: string; name: string } };
    },
    stop: () => service.shutdown(0),
  };
}

/** Builds apps/web/dist unless it is up to date (the service serves it at `/`). */
export async function prepareWebApp(): Promise<void> {
  await ensureWebBuilt();
}
