/**
 * The connections a {@link RedisBroker} runs on: one for commands (the publish script, probes)
 * and a dedicated subscriber side. Standalone Redis and Redis Cluster differ only here.
 */
import type { ScriptClient } from "./publish-script.ts";

/** What a transport reports to the broker. */
export interface TransportEvents {
  /** A pub/sub message arrived on `channel`. */
  message(channel: string, text: string): void;
  /** A connection went down, or a subscriber connection was replaced: re-confirm. */
  down(reason: string): void;
  /** A connection (re)connected: the broker should re-confirm its subscriptions now. */
  up(): void;
  /** A connection error (ioredis reports one per failed reconnect attempt). */
  error(error: Error): void;
}

export interface PubSubTransport {
  /** Cluster mode: sharded pub/sub (SSUBSCRIBE/SPUBLISH). */
  readonly sharded: boolean;
  /** Runs the publish script. */
  readonly commands: ScriptClient;
  /** Subscribes (sharded: per slot) and resolves when Redis confirmed every channel. */
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  /** Publishes `message` as is (sharded: SPUBLISH), on the command connection. */
  publishRaw(channel: string, message: string): Promise<void>;
  /** The probe channels that prove every subscriber connection live (Cluster: one per master). */
  probeChannels(): string[];
  /** Whether the command and subscriber connections are currently up. */
  connected(): boolean;
  /** Resolves once the command connection is up; rejects after `timeoutMs`. */
  whenCommandsReady(timeoutMs: number): Promise<void>;
  /** Drops and reconnects every connection (after checks failed on connections that look up). */
  resetConnections(): void;
  close(): Promise<void>;
}

/** Chunks long SUBSCRIBE lists (as centrifuge does, 512 a command). */
export function chunks<T>(items: readonly T[], size = 512): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Resolves when `emitter` emits `event` or `isReady()` holds; rejects after `timeoutMs`. */
export function waitForEvent(
  emitter: {
    once(event: string, cb: () => void): unknown;
    off(event: string, cb: () => void): unknown;
  },
  event: string,
  isReady: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  if (isReady()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onEvent = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`${what} is not connected (waited ${timeoutMs} ms)`));
    }, timeoutMs);
    emitter.once(event, onEvent);
  });
}

/** A Redis or Cluster client, as far as closing it goes. */
interface Closable {
  readonly status: string;
  disconnect(): void;
  once(event: "end", cb: () => void): unknown;
}

/** Disconnects and waits for "end", which a client between reconnect attempts never emits. */
export async function closeClient(client: Closable): Promise<void> {
  if (client.status === "end") return;
  if (client.status === "reconnecting") {
    client.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    client.once("end", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  client.disconnect();
  await ended;
}
