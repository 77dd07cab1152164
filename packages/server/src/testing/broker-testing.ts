/** What the broker contract suites share: a pair of pods, polling, collecting deliveries. */
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { Broker, BrokerMessage } from "../broker.ts";

export interface BrokerPair {
  /** One pod. */
  readonly a: Broker;
  /** Another pod on the same backend. */
  readonly b: Broker;
  teardown(): Promise<void>;
  /** How many pods subscribe to `channel` on the backend (e.g. `PUBSUB NUMSUB`), if known. */
  subscriberCount?(channel: ChannelName): Promise<number>;
  /**
   * The idle TTL the brokers were made with, in ms (how long an unused channel keeps its
   * state): make it short, 1–3 s, so the suite can watch unused channels go.
   */
  readonly idleTtlMs: number;
  /** Whether the backend holds state for `channel`, looked at without counting as a use. */
  holds(channel: ChannelName): Promise<boolean>;
}

export interface WaitForOptions {
  /** Give up after this long, in ms. Default 5000. */
  timeoutMs?: number;
  /** Poll interval in ms. Default 5. */
  intervalMs?: number;
}

/** Polls `condition` until it holds; throws `message` after the deadline. Never a bare sleep. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  message: string,
  options: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 5_000);
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${message}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 5));
  }
}

/** Makes `broker` record every message it delivers. */
export function collect(broker: Broker): BrokerMessage[] {
  const received: BrokerMessage[] = [];
  broker.setListener((message) => received.push(message));
  return received;
}

/** Only the position of a publish result (without `duplicate`). */
export const position = (p: StreamPosition): StreamPosition => ({
  epoch: p.epoch,
  offset: p.offset,
});
export const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
export const offsets = (messages: readonly BrokerMessage[]) => messages.map((m) => m.offset);
export const onChannel = (messages: readonly BrokerMessage[], channel: ChannelName) =>
  messages.filter((m) => m.channel === channel);

/** Runs `body` with a fresh pair of pods and always tears them down. */
export type WithPair = (body: (pair: BrokerPair) => Promise<void>) => Promise<void>;

/** Proves that everything `pod` would have received before now has arrived. */
export type Flush = (publisher: Broker, pod: Broker, received: BrokerMessage[]) => Promise<void>;
