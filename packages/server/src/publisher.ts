/**
 * Puts events on the broker path: builds the envelope (adds `channel` and `timestamp`),
 * serialises it once, checks its size and hands it to the broker. The {@link Hub} publishes
 * through one; any Node process (a worker, a cron job) can use one on its own, with no hub and
 * no SSE, to reach every pod's subscribers.
 */
import { createHash } from "node:crypto";
import {
  type ChannelName,
  MAX_EVENT_BYTES,
  nowTimestamp,
  parseChannel,
  userChannel,
  validateEventInput,
} from "@realtime/protocol";
import {
  type Broker,
  ChannelCapacityError,
  IdempotencyConflict,
  idempotencyOf,
  type PublishOptions,
  type PublishResult,
} from "./broker.ts";
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
   * it; rejects with a {@link HubError} (`too_large`, `at_capacity` for a new channel past the broker's
   * cap, `broker_unavailable`) or, when validating,
   * a `TypeError` for a bad channel or event (and, always, for a bad idempotency key).
   *
   * With `options.idempotencyKey`, a retry of a publish that was already accepted (the first
   * attempt timed out, the connection dropped) publishes nothing: it resolves with the first
   * attempt's position and `duplicate: true`. See {@link PublishOptions}.
   */
  async publish(
    channel: ChannelName,
    input: EventInput,
    options?: PublishOptions,
  ): Promise<PublishResult> {
    if (this.#validate) {
      const parsed = parseChannel(channel);
      if (!parsed.ok) throw new TypeError(parsed.reason);
      const problem = validateEventInput(input);
      if (problem) throw new TypeError(problem);
    }
    // A bad key is the caller's mistake, not the broker's: a TypeError, never broker_unavailable.
    idempotencyOf(options);
    if (options?.idempotencyKey !== undefined && options.idempotencyFingerprint === undefined) {
      // What the publisher gave, before the server's own fields (timestamp): a retry gives the
      // same, a reuse of the key for another event does not.
      options = { ...options, idempotencyFingerprint: fingerprintOf(channel, input) };
    }
    const { type, ...rest } = input;
    const event = { type, channel, timestamp: nowTimestamp(this.#now()), ...rest };
    const data = JSON.stringify(event);
    if (Buffer.byteLength(data) > MAX_EVENT_BYTES) {
      throw new HubError("too_large", `event is larger than ${MAX_EVENT_BYTES} bytes`);
    }
    try {
      const result = await this.#broker.publish(channel, data, options);
      if (result.duplicate) this.#metrics.publishReplayed?.();
      else this.#metrics.eventPublished();
      return result;
    } catch (cause) {
      if (cause instanceof IdempotencyConflict) {
        throw new HubError("idempotency_conflict", cause.message, { cause });
      }
      if (cause instanceof ChannelCapacityError) {
        throw new HubError("at_capacity", cause.message, { cause });
      }
      this.#metrics.publishFailed();
      throw new HubError("broker_unavailable", "the broker did not accept the event", { cause });
    }
  }

  /** Publishes on the private channel of `userId`. */
  sendToUser(userId: string, input: EventInput, options?: PublishOptions): Promise<PublishResult> {
    return this.publish(userChannel(userId), input, options);
  }
}

/** A short hash of an event as given (keys in a fixed order), for {@link PublishOptions}. */
function fingerprintOf(channel: ChannelName, input: EventInput): string {
  return createHash("sha256")
    .update(canonicalJson([channel, input]))
    .digest("base64url")
    .slice(0, 32);
}

/** JSON with object keys sorted, so that equal values give equal text. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
