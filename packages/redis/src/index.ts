export type { WatchdogOptions } from "./connection-watchdog.ts";
export { watchConnection } from "./connection-watchdog.ts";
export { luaReader } from "./lua.ts";
export type {
  RedisBrokerLogger,
  RedisBrokerOptions,
  ResubscribedListener,
} from "./redis-broker.ts";
export { RedisBroker } from "./redis-broker.ts";
export type {
  ClusterTarget,
  RedisClient,
  RedisNode,
  RedisProfile,
  RedisTarget,
} from "./redis-client.ts";
export { createRedisClient, credentialsOf, DEFAULT_REDIS_URL } from "./redis-client.ts";
export type { RedisConnectionLedgerOptions } from "./redis-connection-ledger.ts";
export { RedisConnectionLedger } from "./redis-connection-ledger.ts";
export type { ChannelKeys } from "./redis-keys.ts";
export { channelKeys, idempotencyKey, keySlot } from "./redis-keys.ts";
export type { RedisPresenceStoreOptions } from "./redis-presence-store.ts";
export { RedisPresenceStore } from "./redis-presence-store.ts";
export type { RedisPublisher } from "./redis-publisher.ts";
export { createRedisPublisher } from "./redis-publisher.ts";
export { ReplicationTimeout } from "./replication.ts";
