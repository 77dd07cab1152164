/** The real entry point as a process: starts, serves, drains on SIGTERM, refuses bad config. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { CloseCode } from "@realtime/protocol";
import { SERVICE_MAIN } from "@realtime/testkit/pods";
import { freePort } from "@realtime/testkit/redis";
import { openHttp1 } from "@realtime/testkit/sse-client";

const MAIN = SERVICE_MAIN;

interface Started {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves once the output (stdout and stderr) holds `text`; rejects on exit or after 15 s. */
  waitForOutput(text: string): Promise<void>;
}

function start(env: Record<string, string>): Started {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const waiters = new Set<() => void>();
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    for (const waiter of [...waiters]) waiter();
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  // Every change a waiter may be waiting for: more output, or the process gone.
  child.once("exit", () => {
    for (const waiter of [...waiters]) waiter();
  });
  const waitForOutput = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        const found = output.includes(text);
        const exited = child.exitCode !== null || child.signalCode !== null;
        if (!found && !exited) return;
        waiters.delete(check);
        clearTimeout(timer);
        if (found) resolve();
        else reject(new Error(`exited without "${text}":\n${output}`));
      };
      // The deadline is a timer of its own: it fires whether or not the process prints.
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no "${text}" after 15 s in:\n${output}`));
      }, 15_000);
      waiters.add(check);
      check();
    });
  return { child, output: () => output, waitForOutput };
}

describe("main.ts", () => {
  it("serves, then on SIGTERM closes streams with shutdown and exits 0", async () => {
    const port = await freePort();
    const { child, output, waitForOutput } = start({
      PORT: String(port),
      HOST: "127.0.0.1",
      NODE_ENV: "development",
      SHUTDOWN_DRAIN_MS: "500",
    });
    try {
      await waitForOutput("realtime is ready");
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
