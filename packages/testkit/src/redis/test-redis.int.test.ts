/**
 * The test servers themselves: a test must run against the redis-server it started, never a
 * neighbour's. A port drawn twice once made a "3-master" cluster out of two servers (one node
 * listed twice), which failed the cluster tests and hung CI on the leaked extra client.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { freePort, redisCli, startRedis, startRedisCluster } from "./test-redis.ts";

const ephemeralLow = Number(
  readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
);

describe("test redis servers", () => {
  it("draws ports below the ephemeral range, never the same one twice", async () => {
    const ports = await Promise.all(Array.from({ length: 100 }, () => freePort()));
    assert.equal(new Set(ports).size, ports.length);
    for (const port of ports) assert.ok(port >= 1024 && port < ephemeralLow, `${port}`);
  });

  it("starts servers in parallel, each answering as its own process", async () => {
    const servers = await Promise.all(Array.from({ length: 4 }, () => startRedis()));
    try {
      const pids = await Promise.all(
        servers.map(
          async (s) => /process_id:(\d+)/.exec(await redisCli(s.port, "INFO", "server"))?.[1],
        ),
      );
      assert.equal(new Set(servers.map((s) => s.port)).size, 4);
      assert.equal(new Set(pids).size, 4, `four processes: ${pids.join(", ")}`);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });

  it("builds a cluster of as many distinct masters as asked", async () => {
    const cluster = await startRedisCluster(3);
    try {
      assert.equal(new Set(cluster.nodes.map((n) => n.port)).size, 3);
      const info = await redisCli(cluster.nodes[0]!.port, "CLUSTER", "INFO");
      assert.match(info, /cluster_size:3/);
      assert.match(info, /cluster_known_nodes:3/);
    } finally {
      await cluster.stop();
    }
  });
});
