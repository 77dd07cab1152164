/**
 * Test Redis: real redis-server processes (single or Cluster) on free ports, and a TCP proxy
 * whose link a test can cut. Node built-ins only, so `@realtime/redis`'s own tests use it
 * without loading the service.
 */
export { TcpProxy } from "./tcp-proxy.ts";
export type { TestRedis, TestRedisCluster } from "./test-redis.ts";
export { freePort, redisCli, replicate, startRedis, startRedisCluster } from "./test-redis.ts";
