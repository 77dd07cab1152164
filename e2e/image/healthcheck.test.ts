/**
 * The image's HEALTHCHECK command (`container.ts healthcheck`) follows the pod's listener as
 * its environment configures it: cleartext HTTP/2 (`HTTP2=h2c`) and TLS, not only HTTP/1.1
 * (which production-tree.test.ts covers) — exit 0 while the pod answers, 1 once it is gone.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { startService, TEST_SECRET } from "@realtime/testkit/service";
import { selfSignedCertificate } from "@realtime/testkit/stack";
import { ROOT } from "../../scripts/packages.ts";

const ENTRY = join(ROOT, "apps/service/src/container.ts");

/** Runs the healthcheck as the image does: its own process, the pod's environment. */
async function healthcheck(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  try {
    await promisify(execFile)(process.execPath, [ENTRY, "healthcheck"], {
      env: { PATH: process.env.PATH, NODE_ENV: "test", JWT_SECRET: TEST_SECRET, ...env },
      timeout: 15_000,
    });
    return { code: 0, stderr: "" };
  } catch (error) {
    const { code, stderr } = error as { code?: number; stderr?: string };
    return { code: code ?? -1, stderr: stderr ?? "" };
  }
}

describe("the image's healthcheck over h2c and TLS", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  const modes: [string, () => Promise<Record<string, string>>][] = [
    ["HTTP2=h2c", async () => ({ HTTP2: "h2c" })],
    [
      "TLS",
      async () => {
        const dir = await mkdtemp(join(tmpdir(), "healthcheck-tls-"));
        dirs.push(dir);
        const { cert, key } = await selfSignedCertificate(dir);
        return { TLS_CERT: cert, TLS_KEY: key };
      },
    ],
  ];
  for (const [name, listener] of modes) {
    it(`${name}: healthy while the pod answers, exit 1 once it is gone`, async () => {
      const env = await listener();
      const svc = await startService(env);
      const pod = { ...env, HOST: "127.0.0.1", PORT: new URL(svc.url).port };
      try {
        assert.deepEqual(await healthcheck(pod), { code: 0, stderr: "" });
      } finally {
        await svc.stop();
      }
      const gone = await healthcheck(pod);
      assert.equal(gone.code, 1);
      assert.match(
        gone.stderr,
        /healthcheck: GET https?:\/\/127\.0\.0\.1:\d+\/healthz answered nothing/,
      );
    });
  }
});
