/**
 * Publishing from any Node process (a worker, a cron job) onto the Redis path, without running
 * a hub or serving SSE: events get a position, land in history and reach every pod's
 * subscribers exactly like events posted through the service.
 */
import type { ChannelName } from "@realtime/protocol";
import {
  type EventInput,
  Publisher,
  type PublishOptions,
  type PublishResult,
} from "@realtime/server";
import { RedisBroker, type RedisBrokerOptions } from "./redis-broker.ts";

export interface RedisPublisher {
  /**
   * Publishes on `channel`; validates the channel name and the event first. With
   * `options.idempotencyKey`, a retry of a publish that may have been accepted (a timeout, a
   * dropped connection) is safe: a repeat within the key's window publishes nothing and
   * resolves with the first publish's position and `duplicate: true`, on any process.
   */
  publish(
    channel: ChannelName,
    input: EventInput,
    options?: PublishOptions,
  ): Promise<PublishResult>;
  /** Publishes on `user:<userId>`. */
  sendToUser(userId: string, input: EventInput, options?: PublishOptions): Promise<PublishResult>;
  close(): Promise<void>;
}

/**
 * A publisher on the same Redis (URL or Cluster, and `prefix`) as the pods. Give it the pods'
 * `metaTtlSeconds` too (their `CHANNEL_IDLE_TTL_MS` in seconds), so a channel it publishes to
 * is kept exactly as long as the pods keep it.
 */
export function createRedisPublisher(options: RedisBrokerOptions = {}): RedisPublisher {
  const broker = new RedisBroker({ probeIntervalMs: 0, ...options });
  const publisher = new Publisher(broker, { validate: true });
  return {
    publish: (channel, input, options) => publisher.publish(channel, input, options),
    sendToUser: (userId, input, options) => publisher.sendToUser(userId, input, options),
    close: () => broker.close(),
  };
}
