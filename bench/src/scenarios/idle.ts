/**
 * Idle capacity: N streams → server memory per stream (RSS delta / N), accept rate,
 * refusals. HTTP/1.1 (one connection per stream) for every server; HTTP/2 (100 streams per
 * session) for ours and Nchan.
 */
import { type Ctx, label, sampleRss, sleep, warm, withTargets } from "../context.ts";
import { type ServerKind, startServer } from "../servers.ts";

export async function idle(ctx: Ctx): Promise<void> {
  const n = ctx.quick ? 500 : 10_000;
  ctx.log(`idle: ${n} HTTP/1.1 streams per server`);
  for (const kind of ctx.servers) await idleRun(ctx, kind, n, false);
  ctx.log(`idle h2: ${n} streams, 100 per HTTP/2 session`);
  for (const kind of ctx.servers.filter((k) => k === "realtime" || k === "nchan")) {
    await idleRun(ctx, kind, n, true);
  }
}

async function idleRun(ctx: Ctx, kind: ServerKind, n: number, h2: boolean): Promise<void> {
  await withTargets(
    ctx,
    async () => [await startServer(kind, { maxConnections: 19_500, h2 })],
    async ([t]) => {
      const target = t!;
      await warm(ctx, target);
      await sleep(1_000);
      const before = await sampleRss(target.pid);
      const r = await ctx.gen.open({
        host: target.host,
        port: target.port,
        paths: [target.subPath(0)],
        headers: target.subHeaders,
        count: n,
        concurrency: 256,
        h2Sessions: h2 ? Math.ceil(n / 100) : undefined,
      });
      await sleep(2_000);
      const after = await sampleRss(target.pid);
      const values = {
        streams: r.ok,
        kbPerStream: r.ok > 0 ? Math.round((after - before) / r.ok / 102.4) / 10 : null,
        acceptPerSec: r.ms > 0 ? Math.round(r.ok / (r.ms / 1000)) : null,
        refused: n - r.ok,
        rssMb: Math.round(after / 1048576),
      };
      const server = label(kind, h2 ? "h2" : undefined);
      const error = r.firstError ? ` (${r.firstError})` : "";
      ctx.log(`  ${server}: ${JSON.stringify(values)}${error}`);
      ctx.record({ scenario: h2 ? "idle h2" : "idle", server, values, notes: [] });
    },
  );
}
