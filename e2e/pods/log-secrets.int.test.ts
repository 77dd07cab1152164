/**
 * Tokens never reach the logs: a real pod at the most verbose level is sent tokens every way a
 * client might (Bearer header, session cookie, a refused query parameter, a forged token,
 * anywhere in a URL), and its whole output must not contain any of them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { until } from "@realtime/testkit/http";
import { login } from "@realtime/testkit/load";
import { type Pod, startPod, stopPods } from "@realtime/testkit/pods";

describe("secrets in logs", () => {
  let pod: Pod;
  before(async () => {
    pod = await startPod({ LOG_LEVEL: "trace" });
  });
  after(async () => {
    await stopPods([pod]);
  });

  /**
   * The pod's output once it holds every line of the requests sent so far: the pipe from the
   * pod lags behind the responses, and a check for what is absent must see every line. Lines
   * that could carry a URL or a message are written before the response is sent, so a marker
   * request's line arriving means every earlier request's are in.
   */
  let markers = 0;
  async function allLogged(): Promise<string> {
    const marker = `/healthz?logged=${++markers}`;
    const response = await fetch(`${pod.url}${marker}`);
    await response.body?.cancel();
    await until(() => pod.output().includes(`"url":"${marker}"`), "the marker's log line");
    return pod.output();
  }

  /** A token's whole shape: three base64url segments, the header a JSON object (`eyJ`). */
  const JWT_SHAPE = /eyJ[\w-]*(\.|%2e)[\w-]*(\.|%2e)[\w-]+/i;

  it("a token anywhere in a URL is logged as [redacted], whatever names it", async () => {
    const { token } = await login(pod.url, "Careless");
    const signature = token.split(".")[2] as string;
    const urls = [
      `/api/events?channel=channel:x&t=${token}`,
      `/api/events?channel=channel:x&bearer=${token}`,
      `/api/events?channel=${token}`,
      `/api/events?channel=channel:x&lastEventId=${token}`,
      `/api/events?channel=channel:x&${token}`,
      `/api/events?channel=channel:x&q=${token.replaceAll(".", "%2E")}`,
      `/api/media/${token}`,
      `/api/jobs/${token}?x=1`,
      `/api/nowhere/${token}/more`,
    ];
    for (const url of urls) {
      const response = await fetch(`${pod.url}${url}`);
      await response.body?.cancel();
      assert.ok(response.status >= 400 && response.status < 500, `${url}: ${response.status}`);
    }
    const output = await allLogged();
    // Logged, with the token cut out and the rest of the URL kept…
    for (const logged of [
      "/api/events?channel=channel:x&t=[redacted]",
      "/api/events?channel=channel:x&bearer=[redacted]",
      "/api/events?channel=[redacted]",
      "/api/events?channel=channel:x&lastEventId=[redacted]",
      "/api/events?channel=channel:x&[redacted]",
      "/api/events?channel=channel:x&q=[redacted]",
      "/api/media/[redacted]",
      "/api/jobs/[redacted]?x=1",
      "/api/nowhere/[redacted]/more",
    ]) {
      assert.ok(output.includes(`"url":"${logged}"`), `logged as ${logged}`);
    }
    // …and neither the token, its signature nor anything shaped like a token is left.
    assert.ok(!output.includes(token), "the token");
    assert.ok(!output.includes(signature), "the signature");
    assert.doesNotMatch(output, JWT_SHAPE);
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
    const output = await allLogged();
    assert.match(output, /"url":"\/api\/auth\/me"/);
    assert.match(output, /"url":"\/api\/events\?channel=channel:x&access_token=\[redacted\]"/);
    // …and nothing in them is a token or a part that would let one be rebuilt.
    for (const secret of [token, forged, signature]) {
      assert.ok(!output.includes(secret), `the output contains ${secret.slice(0, 12)}…`);
    }
  });
});
