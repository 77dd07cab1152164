/** Test helpers of `@realtime/redis`: real redis-server processes on free ports. */
export { ClusterAdmin } from "./cluster-admin.ts";
export { TcpProxy } from "./tcp-proxy.ts";
export type { TestRedis, TestRedisCluster } from "./test-redis.ts";
export { freePort, redisCli, startRedis, startRedisCluster } from "./test-redis.ts";
