/** The real entry point as a process: starts, serves, drains on SIGTERM, refuses bad config. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { CloseCode } from "@realtime/protocol";
import { freePort } from "@realtime/redis/testing";
import { openHttp1 } from "./testing/sse-client.ts";

const MAIN = new URL("./main.ts", import.meta.url).pathname;

function start(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { child, output: () => output };
}

async function waitForOutput(output: () => string, child: ChildProcess, text: string) {
  const deadline = Date.now() + 15_000;
  while (!output().includes(text)) {
    if (child.exitCode !== null) throw new Error(`exited early:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`no "${text}" in:\n${output()}`);
    await Promise.race([once(child.stdout!, "data"), once(child, "exit")]);
  }
}

describe("main.ts", () => {
  it("serves, then on SIGTERM closes streams with shutdown and exits 0", async () => {
    const port = await freePort();
    const { child, output } = start({
      PORT: String(port),
      HOST: "127.0.0.1",
      NODE_ENV: "development",
      SHUTDOWN_DRAIN_MS: "500",
    });
    try {
      await waitForOutput(output, child, "realtime is ready");
      const login = await fetch(`http://127.0.0.1:${port}/api/auth/dev-login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "Proc" }),
      });
      const { token } = (await login.json()) as { token: string };
      const stream = await openHttp1(`http://127.0.0.1:${port}/api/events?channel=channel:p`, {
        authorization: `Bearer ${token}`,
      });
      assert.equal(stream.status, 200);
      const page = await fetch(`http://127.0.0.1:${port}/`);
      assert.match(await page.text(), /<title>realtime/);
      assert.doesNotMatch(
        output(),
        new RegExp(token.split(".")[2] ?? "no-token"),
        "no token in logs",
      );
      child.kill("SIGTERM");
      const close = await stream.waitFor((e) => e.event === "close");
      assert.equal(JSON.parse(close.data).code, CloseCode.Shutdown);
      const [code] = await once(child, "exit");
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("refuses to start in production without JWT_SECRET", async () => {
    const { child, output } = start({ NODE_ENV: "production", PORT: "0" });
    const [code] = await once(child, "exit");
    assert.equal(code, 78);
    assert.match(output(), /JWT_SECRET/);
  });
});
