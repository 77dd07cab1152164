/**
 * Tokens never reach the logs: a real pod at the most verbose level is sent tokens every way a
 * client might (Bearer header, session cookie, a refused query parameter, a forged token),
 * and its whole output must not contain any of them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Pod, startPod, stopPods } from "./testing/pods.ts";
import { login } from "./testing/publisher.ts";

describe("secrets in logs", () => {
  let pod: Pod;
  before(async () => {
    pod = await startPod({ LOG_LEVEL: "trace" });
  });
  after(async () => {
    await stopPods([pod]);
  });

  it("no token appears in the output of a pod logging at trace", async () => {
    const { token } = await login(pod.url, "Secretive");
    const forged = `${token.slice(0, -6)}AAAAAA`;
    const signature = token.split(".")[2] as string;
    const get = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${pod.url}${path}`, { headers }).then(async (r) => {
        await r.body?.cancel();
        return r.status;
      });
    assert.equal(await get("/api/auth/me", { authorization: `Bearer ${token}` }), 200);
    assert.equal(await get("/api/auth/me", { cookie: `rt_session=${token}` }), 200);
    assert.equal(await get("/api/auth/me", { authorization: `Bearer ${forged}` }), 401);
    // Identity never comes from the query string: refused, and not written down either.
    for (const name of ["token", "access_token", "jwt"]) {
      const status = await get(`/api/events?channel=channel:x&${name}=${token}`);
      assert.equal(status, 400, name);
    }
    assert.equal(await get(`/api/nowhere?token=${token}`), 404);
    const stream = new AbortController();
    const open = await fetch(`${pod.url}/api/events?channel=channel:x`, {
      headers: { authorization: `Bearer ${token}` },
      signal: stream.signal,
    });
    assert.equal(open.status, 200);
    stream.abort();
    // The requests were logged (so the check below looks at real log lines)…
    const output = pod.output();
    assert.match(output, /"url":"\/api\/auth\/me"/);
    assert.match(output, /"url":"\/api\/events\?channel=channel:x&access_token=\[redacted\]"/);
    // …and nothing in them is a token or a part that would let one be rebuilt.
    for (const secret of [token, forged, signature]) {
      assert.ok(!output.includes(secret), `the output contains ${secret.slice(0, 12)}…`);
    }
  });
});
