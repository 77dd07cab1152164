/**
 * Publishing from any Node process (a worker, a cron job) onto the Redis path, without running
 * a hub or serving SSE: events get a position, land in history and reach every pod's
 * subscribers exactly like events posted through the service.
 */
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import { type EventInput, Publisher } from "@realtime/server";
import { RedisBroker, type RedisBrokerOptions } from "./redis-broker.ts";

export interface RedisPublisher {
  /** Publishes on `channel`; validates the channel name and the event first. */
  publish(channel: ChannelName, input: EventInput): Promise<StreamPosition>;
  /** Publishes on `user:<userId>`. */
  sendToUser(userId: string, input: EventInput): Promise<StreamPosition>;
  close(): Promise<void>;
}

/** A publisher on the same Redis (URL or Cluster, and `prefix`) as the pods. */
export function createRedisPublisher(options: RedisBrokerOptions = {}): RedisPublisher {
  const broker = new RedisBroker({ probeIntervalMs: 0, ...options });
  const publisher = new Publisher(broker, { validate: true });
  return {
    publish: (channel, input) => publisher.publish(channel, input),
    sendToUser: (userId, input) => publisher.sendToUser(userId, input),
    close: () => broker.close(),
  };
}
