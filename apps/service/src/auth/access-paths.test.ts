/**
 * Channel access on every path an event can take — opening a stream, resuming it (the replay),
 * presence snapshots, history reads, chat posts, the publish API — from both sources of rules: the token's
 * `realtime` claim and the product's backend (`AUTHZ_URL`, a real HTTP server here), with
 * `CHANNEL_DEFAULT_ACCESS=closed`. Then grants withdrawn from open streams.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { encodeCursor } from "@realtime/protocol";
import { startAuthz, type TestAuthz } from "@realtime/testkit/authz";
import { metricValue, openStream, request, type Stream, tokens } from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import type { ChannelGrant } from "./grant.ts";

type Auth = ReturnType<typeof tokens>;

/** What a path answered: its status and, for a refusal, the error code. */
interface Outcome {
  readonly status: number;
  readonly code?: string | undefined;
}

/** A user who may do everything on `channel:team-42-*` by their token, nothing else. */
const TEAM_GRANT: ChannelGrant = {
  subscribe: ["channel:team-42-*"],
  publish: ["channel:team-42-*"],
};

describe("channel access on every path", { timeout: 120_000 }, () => {
  let authz: TestAuthz;
  let rt: RunningService;
  let auth: Auth;
  before(async () => {
    authz = await startAuthz();
    rt = await startService({
      CHANNEL_DEFAULT_ACCESS: "closed",
      AUTHZ_URL: authz.url,
      AUTHZ_TIMEOUT_MS: "300",
      AUTHZ_CACHE_MS: "1000",
      AUTHZ_MAX_CONCURRENCY: "4",
      MAX_CONNECTIONS_PER_USER: "0",
      RATE_LIMIT_CHAT_MAX: "0",
      RATE_LIMIT_STREAMS_MAX: "0",
      RATE_LIMIT_PRESENCE_MAX: "0",
      RATE_LIMIT_PUBLISH_MAX: "0",
    });
    auth = tokens();
  });
  after(async () => {
    await rt?.stop();
    await authz?.stop();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  async function streamOutcome(stream: Stream): Promise<Outcome> {
    if (stream.status !== 200) {
      await stream.ended;
      const body = JSON.parse(stream.text()) as { code?: string };
      return { status: stream.status, code: body.code };
    }
    await stream.waitFor((e) => e.event === "ready");
    stream.close();
    return { status: 200 };
  }

  /** Each path, as a user (`subscribe` paths and chat) or a service (publish API) would take it. */
  const paths: Record<
    string,
    {
      readonly action: "subscribe" | "publish";
      readonly service?: boolean;
      run(token: string, channel: string): Promise<Outcome>;
    }
  > = {
    "stream open": {
      action: "subscribe",
      async run(token, channel) {
        const url = `${rt.url}/api/events?channel=${encodeURIComponent(channel)}`;
        return streamOutcome(await openStream(url, bearer(token)));
      },
    },
    "resume replay": {
      action: "subscribe",
      async run(token, channel) {
        // A cursor from before two events: an allowed resume replays them, a denied one sends nothing.
        const position = await rt.service.broker.position(channel as `channel:${string}`);
        const cursor = encodeCursor([[channel, position]]);
        for (const n of [1, 2]) {
          await rt.service.hub.publish(channel as `channel:${string}`, { type: "missed", n });
        }
        const url = `${rt.url}/api/events?channel=${encodeURIComponent(channel)}`;
        const stream = await openStream(url, { ...bearer(token), "last-event-id": cursor });
        if (stream.status !== 200) return streamOutcome(stream);
        await stream.waitFor((e) => e.event === undefined && JSON.parse(e.data).n === 2);
        stream.close();
        return { status: 200 };
      },
    },
    presence: {
      action: "subscribe",
      async run(token, channel) {
        const reply = await request(
          `${rt.url}/api/channels/${encodeURIComponent(channel)}/presence`,
          { headers: bearer(token) },
        );
        return { status: reply.status, code: reply.json?.code };
      },
    },
    history: {
      action: "subscribe",
      async run(token, channel) {
        // Something said before: an allowed read shows it, a denied one shows nothing.
        await rt.service.hub.publish(channel as `channel:${string}`, { type: "said" });
        const reply = await request(
          `${rt.url}/api/channels/${encodeURIComponent(channel)}/messages?limit=5`,
          { headers: bearer(token) },
        );
        if (reply.status !== 200) return { status: reply.status, code: reply.json?.code };
        const events = (reply.json as { events: { event: { type: string } }[] }).events;
        assert.equal(events.at(-1)?.event.type, "said");
        return { status: 200 };
      },
    },
    chat: {
      action: "publish",
      async run(token, channel) {
        const { status, body } = await rt.post("/api/chat/messages", token, {
          channel,
          content: "hello",
        });
        return { status, code: (body as { code?: string } | null)?.code };
      },
    },
    "publish API": {
      action: "publish",
      service: true,
      async run(token, channel) {
        const { status, body } = await rt.post("/api/publish", token, {
          channel,
          event: { type: "note" },
        });
        return { status, code: (body as { code?: string } | null)?.code };
      },
    },
  };

  const ok = (status: number) => status >= 200 && status < 300;
  let n = 0;
  /** A fresh subject per case, so no cached decision carries over. */
  async function subject(service: boolean, grant?: ChannelGrant) {
    n++;
    if (service) {
      const name = `backend${n}`;
      const token = await auth.issueServiceToken({
        service: name,
        scopes: ["publish"],
        ...(grant && { grant }),
      });
      return { token, id: `svc:${name}` };
    }
    const id = `u_access${n}`;
    return { token: await auth.issueUserToken({ id, name: "Ada", ...(grant && { grant }) }), id };
  }

  for (const [name, path] of Object.entries(paths)) {
    describe(name, () => {
      it("allowed by the token's claim, without asking the backend", async () => {
        const { token, id } = await subject(path.service === true, TEAM_GRANT);
        const outcome = await path.run(token, "channel:team-42-chat");
        assert.ok(ok(outcome.status), `got ${JSON.stringify(outcome)}`);
        assert.equal(authz.asked.filter((q) => q.userId === id).length, 0);
      });

      it("denied by the token's claim (the claim is the whole grant: no backend, no default)", async () => {
        const { token, id } = await subject(path.service === true, TEAM_GRANT);
        // The backend would allow it: the claim still decides.
        authz.set(id, "channel:elsewhere", path.action, 200);
        const outcome = await path.run(token, "channel:elsewhere");
        assert.deepEqual(outcome, { status: 403, code: "RT_ERR_CHANNEL_FORBIDDEN" });
        assert.equal(authz.asked.filter((q) => q.userId === id).length, 0);
      });

      it("allowed by AUTHZ_URL (2xx), asked once for the user, channel and action", async () => {
        const { token, id } = await subject(path.service === true);
        authz.set(id, "channel:backend-yes", path.action, 200);
        const outcome = await path.run(token, "channel:backend-yes");
        assert.ok(ok(outcome.status), `got ${JSON.stringify(outcome)}`);
        const asked = authz.asked.filter((q) => q.userId === id);
        assert.deepEqual(asked, [
          { userId: id, channel: "channel:backend-yes", action: path.action },
        ]);
      });

      it("denied by AUTHZ_URL (403)", async () => {
        const { token, id } = await subject(path.service === true);
        authz.set(id, "channel:backend-no", path.action, 403);
        const outcome = await path.run(token, "channel:backend-no");
        assert.deepEqual(outcome, { status: 403, code: "RT_ERR_CHANNEL_FORBIDDEN" });
      });

      it("denied when AUTHZ_URL does not answer in time (503 RT_ERR_AUTHZ_UNAVAILABLE)", async () => {
        const { token, id } = await subject(path.service === true);
        authz.set(id, "channel:backend-slow", path.action, "hang");
        const outcome = await path.run(token, "channel:backend-slow");
        assert.deepEqual(outcome, { status: 503, code: "RT_ERR_AUTHZ_UNAVAILABLE" });
      });
    });
  }

  it("a channel no rule covers (AUTHZ_URL 404) follows CHANNEL_DEFAULT_ACCESS=closed for users", async () => {
    const { token } = await subject(false);
    const outcome = await paths["stream open"]?.run(token, "channel:nobody-rules");
    assert.deepEqual(outcome, { status: 403, code: "RT_ERR_CHANNEL_FORBIDDEN" });
    // The user's own channel needs no rule; another user's is refused whatever the claim says.
    const own = await subject(false, { subscribe: ["user:*"], publish: [] });
    assert.equal((await paths["stream open"]?.run(own.token, `user:${own.id}`))?.status, 200);
    const other = await paths["stream open"]?.run(own.token, "user:u_someoneelse");
    assert.deepEqual(other, { status: 403, code: "RT_ERR_CHANNEL_FORBIDDEN" });
  });

  it("backend timeouts and answers are counted in /metrics", async () => {
    const text = (await request(`${rt.url}/metrics`)).text;
    for (const result of ["allow", "deny", "timeout"]) {
      assert.ok(
        metricValue(text, "realtime_authz_requests_total", `result="${result}"`) >= 1,
        `no ${result} counted`,
      );
    }
  });

  describe("withdrawn grants", () => {
    it("the backend withdraws one channel: the stream closes with 3503 naming it; the rest reopens", async () => {
      const { token, id } = await subject(false);
      authz.set(id, "channel:wd-a", "subscribe", 200);
      authz.set(id, "channel:wd-b", "subscribe", 200);
      const url = `${rt.url}/api/events?channel=channel:wd-a&channel=channel:wd-b`;
      const stream = await openStream(url, bearer(token));
      assert.equal(stream.status, 200);
      await stream.waitFor((e) => e.event === "ready");
      authz.set(id, "channel:wd-b", "subscribe", 403);
      const close = await stream.waitFor((e) => e.event === "close", 10_000);
      const data = JSON.parse(close.data) as { code: number; reason: string; channels: string[] };
      assert.equal(data.code, 3503);
      assert.equal(data.reason, "forbidden");
      assert.deepEqual(data.channels, ["channel:wd-b"]);
      await stream.ended;
      // Reopening with the withdrawn channel is refused; with the rest it is not.
      assert.equal((await paths["stream open"]?.run(token, "channel:wd-b"))?.status, 403);
      assert.equal((await paths["stream open"]?.run(token, "channel:wd-a"))?.status, 200);
      const text = (await request(`${rt.url}/metrics`)).text;
      assert.ok(metricValue(text, "realtime_grants_revoked_total") >= 1);
    });

    it("a backend that cannot answer a re-check leaves the stream open (no withdrawal seen)", async () => {
      const { token, id } = await subject(false);
      authz.set(id, "channel:wd-slow", "subscribe", 200);
      const url = `${rt.url}/api/events?channel=channel:wd-slow`;
      const stream = await openStream(url, bearer(token));
      await stream.waitFor((e) => e.event === "ready");
      authz.set(id, "channel:wd-slow", "subscribe", "hang");
      // The next pass asks again (the cached grant expired) and gets no answer in time.
      await authz.nextQuestion((q) => q.userId === id);
      await rt.service.grantWatch?.check();
      await rt.service.hub.publish("channel:wd-slow", { type: "still_here" });
      await stream.waitFor(
        (e) => e.event === undefined && JSON.parse(e.data).type === "still_here",
      );
      assert.ok(!stream.events.some((e) => e.event === "close"));
      stream.close();
    });

    it("one pass re-checks 60 users' streams within the backend's concurrency and closes every withdrawn one", async () => {
      const users = await Promise.all(Array.from({ length: 60 }, () => subject(false)));
      for (const { id } of users) authz.set(id, "channel:many", "subscribe", 200);
      const streams = await Promise.all(
        users.map(({ token }) =>
          openStream(`${rt.url}/api/events?channel=channel:many`, bearer(token)),
        ),
      );
      await Promise.all(streams.map((s) => s.waitFor((e) => e.event === "ready")));
      assert.equal(rt.service.grantWatch?.size, users.length);
      for (const { id } of users) authz.set(id, "channel:many", "subscribe", 403);
      const closes = await Promise.all(
        streams.map((s) => s.waitFor((e) => e.event === "close", 10_000)),
      );
      for (const close of closes) assert.equal(JSON.parse(close.data).code, 3503);
      assert.equal(rt.service.grantWatch?.size, 0);
      // AUTHZ_MAX_CONCURRENCY (4 here): never more questions at once, whatever the pass holds.
      assert.ok(authz.maxInFlight <= 4, `max in flight ${authz.maxInFlight}`);
    });

    it("a refreshed token that no longer grants the channel: the resume is refused", async () => {
      // A token that expires in 2.5 s: the stream ends with token_expired at exp − 1 s.
      const soon = tokens(() => Date.now() - 3_600_000 + 2_500);
      const id = "u_refresh";
      const first = await soon.issueUserToken({ id, name: "Ada", grant: TEAM_GRANT });
      const channel = "channel:team-42-refresh";
      const url = `${rt.url}/api/events?channel=${channel}`;
      const stream = await openStream(url, bearer(first));
      const ready = await stream.waitFor((e) => e.event === "ready");
      const close = await stream.waitFor((e) => e.event === "close", 10_000);
      assert.equal(JSON.parse(close.data).code, 3005);
      const refreshed = await auth.issueUserToken({
        id,
        name: "Ada",
        grant: { subscribe: ["channel:team-43-*"], publish: [] },
      });
      const again = await openStream(url, {
        ...bearer(refreshed),
        "last-event-id": ready.id ?? "",
      });
      assert.deepEqual(await streamOutcome(again), {
        status: 403,
        code: "RT_ERR_CHANNEL_FORBIDDEN",
      });
    });
  });
});
