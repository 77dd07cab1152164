/** Starts the real service on a free loopback port for integration tests. */
import type { AddressInfo } from "node:net";
import type { Broker, PresenceStore } from "@realtime/server";
import { buildApp, type Service } from "../app.ts";
import { loadConfig } from "../config.ts";

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

export async function startService(
  env: Record<string, string> = {},
  options: { broker?: Broker; presenceStore?: PresenceStore } = {},
): Promise<RunningService> {
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "silent",
    JWT_SECRET: TEST_SECRET,
    HOST: "127.0.0.1",
    PORT: "0",
    ...env,
  });
  const service = await buildApp(config, { logger: false, ...options });
  let metricsUrl: string | null = null;
  if (service.metricsApp) {
    await service.metricsApp.listen({ port: 0, host: "127.0.0.1" });
    const { port: metricsPort } = service.metricsApp.server.address() as AddressInfo;
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
  }
  await service.app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = service.app.server.address() as AddressInfo;
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
