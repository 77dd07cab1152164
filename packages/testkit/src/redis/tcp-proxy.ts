/**
 * A TCP proxy in front of a test Redis that can turn its open connections into black holes:
 * they stay open but carry nothing, like a half-open socket after a network partition, which
 * no keepalive notices for minutes. New connections are forwarded normally.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  dead: boolean;
}

const HOST = "127.0.0.1";

export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  #port = 0;

  /** Starts a proxy to `127.0.0.1:<targetPort>` on a free port. */
  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await proxy.#listen();
    return proxy;
  }

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, HOST);
      const pair: Pair = { client, upstream, dead: false };
      this.#pairs.add(pair);
      client.on("data", (chunk) => pair.dead || upstream.write(chunk));
      upstream.on("data", (chunk) => pair.dead || client.write(chunk));
      const drop = () => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      for (const socket of [client, upstream]) {
        socket.on("error", drop);
        socket.on("close", drop);
      }
    });
  }

  get port(): number {
    return this.#port;
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#pairs.size;
  }

  get url(): string {
    return `redis://${HOST}:${this.#port}`;
  }

  /** Every connection open now stops carrying bytes, in both directions, without closing. */
  blackhole(): void {
    for (const pair of this.#pairs) pair.dead = true;
  }

  async close(): Promise<void> {
    for (const pair of this.#pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, HOST, resolve));
    const address = this.#server.address();
    this.#port = typeof address === "object" && address ? address.port : 0;
  }
}
