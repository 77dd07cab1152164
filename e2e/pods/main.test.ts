/** The real entry point as a process: starts, serves, drains on SIGTERM, refuses bad config. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CloseCode } from "@realtime/protocol";
import { startChild } from "@realtime/testkit/child-process";
import { SERVICE_MAIN } from "@realtime/testkit/pods";
import { freePort } from "@realtime/testkit/redis";
import { openHttp1 } from "@realtime/testkit/sse-client";

/** `node main.ts` with exactly `env`; its output awaited for up to 15 s. */
function start(env: Record<string, string>) {
  const started = startChild(SERVICE_MAIN, [], env);
  return {
    child: started.child,
    output: started.output,
    waitForOutput: (text: string) => started.waitFor(text, 15_000),
  };
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

  it("listens with LISTEN_BACKLOG (default 4096), as the kernel reports it, capped by somaxconn", {
    skip: !existsSync("/usr/bin/ss") && "no ss(8) to read the listening socket's backlog",
  }, async () => {
    const somaxconn = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
    for (const [env, want] of [
      [{}, 4096],
      [{ LISTEN_BACKLOG: "1234" }, 1234],
    ] as const) {
      const port = await freePort();
      const { child, waitForOutput } = start({
        PORT: String(port),
        HOST: "127.0.0.1",
        NODE_ENV: "development",
        ...env,
      });
      try {
        await waitForOutput("realtime is ready");
        // For a listening socket, ss's Send-Q column is the backlog it was given.
        const line = execFileSync("/usr/bin/ss", ["-Hltn", `sport = :${port}`], {
          encoding: "utf8",
        }).trim();
        const backlog = Number(line.split(/\s+/)[2]);
        assert.equal(backlog, Math.min(want, somaxconn), line);
      } finally {
        child.kill("SIGKILL");
        if (child.exitCode === null) await once(child, "exit");
      }
    }
  });

  it("refuses to start in production without JWT_SECRET", async () => {
    const { child, output } = start({ NODE_ENV: "production", PORT: "0" });
    const [code] = await once(child, "exit");
    assert.equal(code, 78);
    assert.match(output(), /JWT_SECRET/);
  });
});
