/**
 * Capacity at this machine's fd cap (20,000 per process): how many concurrent streams one
 * server process holds, whether they stay up, and what a client past the limit gets (ours:
 * a 503 with Retry-After at MAX_CONNECTIONS; the peers: whatever running out of fds does).
 */
import { type Ctx, label, sleep, withTargets } from "../context.ts";
import { fdCount, processTree } from "../proc.ts";
import { startServer } from "../servers.ts";

export async function capacity(ctx: Ctx): Promise<void> {
  const max = ctx.quick ? 300 : 19_500;
  const ourAttempts = ctx.quick ? 350 : 19_600;
  const peerAttempts = ctx.quick ? 350 : 20_000;
  ctx.log(
    `capacity: realtime MAX_CONNECTIONS=${max}, ${ourAttempts} attempts; peers ${peerAttempts} attempts`,
  );
  for (const kind of ctx.servers) {
    await withTargets(
      ctx,
      async () => [await startServer(kind, { maxConnections: max })],
      async ([t]) => {
        const target = t!;
        const attempts = kind === "realtime" ? ourAttempts : peerAttempts;
        const r = await ctx.gen.open({
          host: target.host,
          port: target.port,
          paths: [target.subPath(0)],
          headers: target.subHeaders,
          count: attempts,
          concurrency: 256,
          timeoutMs: 10_000,
        });
        const fds = processTree(target.pid).reduce((n, pid) => n + fdCount(pid), 0);
        await sleep(ctx.quick ? 1_000 : 5_000);
        const held = await ctx.gen.stats([]);
        const values = {
          attempts,
          streams: r.ok,
          held: held.open,
          dropped: held.closedEarly,
          refused503: r.status503,
          withRetryAfter: r.retryAfter,
          otherStatus: r.otherStatus,
          resets: r.errors,
          hung: r.timeouts,
          serverFds: fds,
          acceptPerSec: r.ms > 0 ? Math.round(r.ok / (r.ms / 1000)) : null,
        };
        ctx.log(
          `  ${label(kind)}: ${JSON.stringify(values)}${r.firstError ? ` (${r.firstError})` : ""}`,
        );
        ctx.record({ scenario: "capacity", server: label(kind), values, notes: [] });
      },
    );
  }
}
