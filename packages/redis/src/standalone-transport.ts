/**
 * Standalone Redis: a command client and a dedicated subscriber client (plain PUBLISH and
 * SUBSCRIBE). ioredis resubscribes by itself after a reconnect (`autoResubscribe`); the broker
 * still confirms that with its own SUBSCRIBE and a probe before it reports ready.
 */
import type { Redis } from "ioredis";
import { guardHandshake } from "./connection-watchdog.ts";
import type { ScriptClient } from "./publish-script.ts";
import {
  chunks,
  closeClient,
  type PubSubTransport,
  type TransportEvents,
  waitForEvent,
} from "./pubsub-transport.ts";
import { createRedisClient } from "./redis-client.ts";
import { probeChannel } from "./redis-keys.ts";
import { asTimeout } from "./timeout.ts";

export interface StandaloneTransportOptions {
  readonly url: string;
  readonly prefix: string;
  readonly podId: string;
  readonly commandTimeoutMs: number;
}

export class StandaloneTransport implements PubSubTransport {
  readonly sharded = false;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #probe: string;
  readonly #unguard: (() => void)[];

  constructor(options: StandaloneTransportOptions, events: TransportEvents) {
    this.#probe = probeChannel(options.prefix, options.podId);
    const { url, podId, commandTimeoutMs } = options;
    this.#cmd = createRedisClient(url, {
      role: "commands",
      name: `realtime-cmd-${podId}`,
      commandTimeoutMs,
    });
    this.#sub = createRedisClient(url, { role: "subscriber", name: `realtime-sub-${podId}` });
    // The subscriber has no command timeout: a handshake Redis never answers would hold it
    // (and the broker's readiness) for good.
    const stalled = (reason: string) => events.error(new Error(reason));
    this.#unguard = [this.#cmd, this.#sub].map((client) =>
      guardHandshake(client, undefined, stalled),
    );
    this.#sub.on("message", (channel: string, text: string) => events.message(channel, text));
    for (const [name, client] of [
      ["subscriber", this.#sub],
      ["command", this.#cmd],
    ] as const) {
      client.on("ready", () => events.up());
      client.on("close", () => events.down(`${name} connection closed`));
      client.on("error", (error: Error) => events.error(error));
    }
  }

  get commands(): ScriptClient {
    return this.#cmd;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(chunks(channels).map((chunk) => this.#sub.subscribe(...chunk)));
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(chunks(channels).map((chunk) => this.#sub.unsubscribe(...chunk)));
  }

  async publishRaw(channel: string, message: string): Promise<void> {
    try {
      await this.#cmd.publish(channel, message);
    } catch (error) {
      throw asTimeout(error); // the broker counts the probe's timeouts
    }
  }

  probeChannels(): string[] {
    return [this.#probe];
  }

  connected(): boolean {
    return this.#cmd.status === "ready" && this.#sub.status === "ready";
  }

  whenCommandsReady(timeoutMs: number): Promise<void> {
    const cmd = this.#cmd;
    return waitForEvent(cmd, "ready", () => cmd.status === "ready", timeoutMs, "redis");
  }

  resetConnections(): void {
    this.#sub.disconnect(true);
    this.#cmd.disconnect(true);
  }

  async close(): Promise<void> {
    for (const unguard of this.#unguard) unguard();
    await Promise.all([closeClient(this.#cmd), closeClient(this.#sub)]);
  }
}
