/**
 * A pod that takes long to stop says why: each shutdown step past its budget is logged at warn
 * with its name and duration (a rolling restart that has to SIGKILL a pod prints those lines).
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { MemoryBroker } from "@realtime/server";
import { buildApp } from "./app.ts";
import { loadConfig } from "./config.ts";

/** A broker whose close takes longer than a shutdown step's budget (1 s). */
class SlowClosingBroker extends MemoryBroker {
  override async close(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await super.close();
  }
}

test("a shutdown step past its budget is logged at warn, naming the step", async () => {
  const lines: Array<{ level: number; step?: string; tookMs?: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig({
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    JWT_SECRET: "s".repeat(32),
  });
  const service = await buildApp(config, {
    broker: new SlowClosingBroker(),
    logger: { level: "warn", stream },
  });
  await service.shutdown(0);
  const slow = lines.filter((line) => line.msg.startsWith("shutdown:"));
  assert.deepEqual(
    slow.map((line) => line.step),
    ["broker"],
    JSON.stringify(lines),
  );
  assert.ok((slow[0]?.tookMs ?? 0) >= 1000);
  assert.equal(slow[0]?.level, 40);
});
