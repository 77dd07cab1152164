/**
 * Puts events on the broker path: builds the envelope (adds `channel` and `timestamp`),
 * serialises it once, checks its size and hands it to the broker. The {@link Hub} publishes
 * through one; any Node process (a worker, a cron job) can use one on its own, with no hub and
 * no SSE, to reach every pod's subscribers.
 */
import {
  type ChannelName,
  MAX_EVENT_BYTES,
  nowTimestamp,
  parseChannel,
  type StreamPosition,
  userChannel,
  validateEventInput,
} from "@realtime/protocol";
import type { Broker } from "./broker.ts";
import { type EventInput, HubError } from "./hub-error.ts";
import { type Metrics, noopMetrics } from "./metrics.ts";

export interface PublisherOptions {
  /** Default: counts nothing. */
  metrics?: Metrics | undefined;
  /** Clock for `timestamp`, for tests. Default `Date.now`. */
  now?: (() => number) | undefined;
  /**
   * Check the channel name and the event's fields (type, field names) before publishing.
   * Default false: the service's routes validate input themselves; a standalone publisher
   * should turn it on.
   */
  validate?: boolean;
}

export class Publisher {
  readonly #broker: Broker;
  readonly #metrics: Metrics;
  readonly #now: () => number;
  readonly #validate: boolean;

  constructor(broker: Broker, options: PublisherOptions = {}) {
    this.#broker = broker;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#now = options.now ?? Date.now;
    this.#validate = options.validate ?? false;
  }

  /**
   * Publishes `input` on `channel`. Resolves with the event's position once the broker holds
   * it; rejects with a {@link HubError} (`too_large`, `broker_unavailable`) or, when validating,
   * a `TypeError` for a bad channel or event.
   */
  async publish(channel: ChannelName, input: EventInput): Promise<StreamPosition> {
    if (this.#validate) {
      const parsed = parseChannel(channel);
      if (!parsed.ok) throw new TypeError(parsed.reason);
      const problem = validateEventInput(input);
      if (problem) throw new TypeError(problem);
    }
    const { type, ...rest } = input;
    const event = { type, channel, timestamp: nowTimestamp(this.#now()), ...rest };
    const data = JSON.stringify(event);
    if (Buffer.byteLength(data) > MAX_EVENT_BYTES) {
      throw new HubError("too_large", `event is larger than ${MAX_EVENT_BYTES} bytes`);
    }
    try {
      const position = await this.#broker.publish(channel, data);
      this.#metrics.eventPublished();
      return position;
    } catch (cause) {
      this.#metrics.publishFailed();
      throw new HubError("broker_unavailable", "the broker did not accept the event", { cause });
    }
  }

  /** Publishes on the private channel of `userId`. */
  sendToUser(userId: string, input: EventInput): Promise<StreamPosition> {
    return this.publish(userChannel(userId), input);
  }
}
