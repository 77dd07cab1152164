/**
 * Attack: another site opens a stream (or reads presence) as the signed-in user. A top-level
 * navigation from another site — a link, `window.open`, `location =` — carries the
 * `SameSite=Lax` session cookie on a GET and no `Origin`, so the Origin check alone let it
 * through: the victim joined a room the attacker chose (the attacker reads the victim's id and
 * name from that room's presence) and one of the victim's stream slots was used.
 *
 * The requests here carry the headers Chromium sends for each case (e2e/cross-site.e2e.test.ts
 * runs the real browser). Each refusal is 403 `RT_ERR_FORBIDDEN`; afterwards the room shows no
 * sign of the victim and the victim's slots are untouched, while the victim's own page (a
 * same-origin EventSource) goes on posting and receiving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  ofType,
  openStream,
  type Reply,
  refusal,
  request,
  type Stream,
  until,
} from "@realtime/testkit/http";
import { type RunningService, startService } from "@realtime/testkit/service";
import { ensureWebBuilt } from "../../../web/build.ts";

const ALLOWED = "https://app.example.com";

/** What Chromium sends with each kind of request (Fetch Metadata, and `Origin` where it does). */
const NAVIGATION = { "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" };
const ATTACKS: [string, Record<string, string>][] = [
  [
    "a link, window.open or location = on another site",
    { ...NAVIGATION, "sec-fetch-site": "cross-site", "sec-fetch-user": "?1" },
  ],
  ["a navigation from a sibling subdomain", { ...NAVIGATION, "sec-fetch-site": "same-site" }],
  [
    "an <img> on another site",
    { "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image" },
  ],
  [
    "an <img> on a sibling subdomain (Lax cookies go along)",
    { "sec-fetch-site": "same-site", "sec-fetch-mode": "no-cors", "sec-fetch-dest": "image" },
  ],
  [
    "a same-site EventSource from an origin that is not allowed",
    {
      "sec-fetch-site": "same-site",
      "sec-fetch-mode": "cors",
      "sec-fetch-dest": "empty",
      origin: "https://blog.example.com",
    },
  ],
  ["a same-origin link to the stream", { ...NAVIGATION, "sec-fetch-site": "same-origin" }],
  ["the URL typed or bookmarked", { ...NAVIGATION, "sec-fetch-site": "none" }],
];

/** The page's own EventSource and fetches. */
const SAME_ORIGIN = {
  "sec-fetch-site": "same-origin",
  "sec-fetch-mode": "cors",
  "sec-fetch-dest": "empty",
};

describe("cross-site reads with the session cookie", () => {
  let svc: RunningService;
  let victim: { token: string; user: { id: string } };
  let cookie: string;
  let bystander: { token: string };
  let watch: Stream;
  let home: Stream;
  const opened: Stream[] = [];

  before(async () => {
    await ensureWebBuilt();
    svc = await startService({ CORS_ORIGINS: ALLOWED, PRESENCE_GRACE_MS: "100" });
    victim = await svc.login("Victim");
    cookie = `rt_session=${victim.token}`;
    bystander = await svc.login("Bystander");
    // Someone already in the room the attacker picked, watching its presence.
    watch = await openStream(`${svc.url}/api/events?channel=channel:trap`, {
      authorization: `Bearer ${bystander.token}`,
    });
    assert.equal(watch.status, 200);
    // The victim's own page: a same-origin stream authenticated by the cookie.
    home = await openStream(`${svc.url}/api/events?channel=channel:home`, {
      cookie,
      ...SAME_ORIGIN,
    });
    assert.equal(home.status, 200);
  });
  after(async () => {
    for (const stream of [watch, home, ...opened]) stream?.close();
    await svc.stop();
  });

  async function stream(path: string, headers: Record<string, string>): Promise<Stream> {
    const s = await openStream(`${svc.url}${path}`, headers);
    opened.push(s);
    return s;
  }

  async function victimStillWorks(content: string): Promise<void> {
    const posted = await request(`${svc.url}/api/chat/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, ...SAME_ORIGIN },
      body: JSON.stringify({ channel: "home", content }),
    });
    assert.equal(posted.status, 204, posted.text);
    await home.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
  }

  function assertForbidden(
    status: number,
    body: { code?: string; message?: string } | null,
    what: string,
  ) {
    assert.equal(status, 403, what);
    assert.equal(body?.code, "RT_ERR_FORBIDDEN", what);
    assert.match(String(body?.message), /cross-site|navigat/i, what);
  }

  for (const [what, headers] of ATTACKS) {
    it(`refused: the stream and presence opened by ${what}`, async () => {
      const s = await stream("/api/events?channel=channel:trap", { cookie, ...headers });
      // The status first: on a stream that opened, `refusal` would wait for its end.
      assert.equal(s.status, 403, `stream: ${what}`);
      assertForbidden(s.status, await refusal(s), `stream: ${what}`);
      const presence = await request(`${svc.url}/api/channels/trap/presence`, {
        headers: { cookie, ...headers },
      });
      assertForbidden(presence.status, presence.json, `presence: ${what}`);
      await victimStillWorks(`after ${what}`);
    });
  }

  it("refused: any other API read from another site; a same-origin navigation to one is fine", async () => {
    const me = (headers: Record<string, string>): Promise<Reply> =>
      request(`${svc.url}/api/auth/me`, { headers: { cookie, ...headers } });
    // The cross-site and same-site ones (the first five); the last two come from our own site.
    for (const [what, headers] of ATTACKS.slice(0, 5)) {
      const reply = await me(headers);
      assertForbidden(reply.status, reply.json, `me: ${what}`);
    }
    // Only the stream and presence refuse a navigation as such: "Open GIF" opens
    // /api/media/:id in a new tab from the app's own page.
    const own = await me({ ...NAVIGATION, "sec-fetch-site": "same-origin" });
    assert.equal(own.status, 200, own.text);
    await victimStillWorks("after other reads");
  });

  it("allowed: the page and its files from a cross-site link; a listed origin's EventSource; bearer", async () => {
    const crossSiteLink = { cookie, ...NAVIGATION, "sec-fetch-site": "cross-site" };
    const page = await request(`${svc.url}/`, { headers: crossSiteLink });
    assert.equal(page.status, 200, "a link to the app opens it");
    const asset = /<script[^>]*\bsrc="(\/assets\/[^"]+)"/.exec(page.text)?.[1];
    assert.ok(asset, "the page names its script");
    const script = await request(`${svc.url}${asset}`, {
      headers: {
        cookie,
        "sec-fetch-site": "same-origin",
        "sec-fetch-mode": "no-cors",
        "sec-fetch-dest": "script",
      },
    });
    assert.equal(script.status, 200);

    // A credentialed cross-origin EventSource from an allowed origin sends Origin.
    const listed = {
      cookie,
      "sec-fetch-site": "cross-site",
      "sec-fetch-mode": "cors",
      "sec-fetch-dest": "empty",
      origin: ALLOWED,
    };
    const cors = await stream("/api/events?channel=channel:partner", listed);
    assert.equal(cors.status, 200);
    assert.equal(cors.headers["access-control-allow-origin"], ALLOWED);
    const presence = await request(`${svc.url}/api/channels/partner/presence`, { headers: listed });
    assert.equal(presence.status, 200, presence.text);
    // A bearer token is attached by script, which another site cannot do for the user.
    const bearer = await stream("/api/events?channel=channel:partner", {
      authorization: `Bearer ${victim.token}`,
      ...NAVIGATION,
      "sec-fetch-site": "cross-site",
    });
    assert.equal(bearer.status, 200);
    // Residual risk (docs/security.md): a browser without Fetch Metadata sends only the
    // cookie on a navigation, which cannot be told from a plain client's request.
    const legacy = await stream("/api/events?channel=channel:partner", { cookie });
    assert.equal(legacy.status, 200);
    for (const s of [cors, bearer, legacy]) s.close();
    await victimStillWorks("after allowed reads");
  });

  it("afterwards: the room shows no sign of the victim and the victim's slots are untouched", async () => {
    // Everything published to the room before this marker has reached the bystander (presence
    // publishes its decisions in batches: out first, so they are ahead of the marker).
    await svc.service.presence.flush();
    const marker = await request(`${svc.url}/api/chat/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${bystander.token}` },
      body: JSON.stringify({ channel: "trap", content: "marker" }),
    });
    assert.equal(marker.status, 204);
    await watch.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === "marker");
    const seen = watch.events
      .filter(ofType("presence"))
      .map((e) => JSON.parse(e.data) as { userId: string; status: string });
    assert.deepEqual(
      seen.filter((e) => e.userId === victim.user.id),
      [],
      "no presence event for the victim",
    );
    const snapshot = await request(`${svc.url}/api/channels/trap/presence`, {
      headers: { authorization: `Bearer ${bystander.token}` },
    });
    const users = (snapshot.json?.users ?? []) as { userId: string }[];
    assert.ok(!users.some((u) => u.userId === victim.user.id), snapshot.text);
    // The allowed streams above were closed; only the victim's own page holds a slot.
    const limits = svc.service.security.connectionLimits;
    await until(
      () => limits.userCount(victim.user.id) === 1,
      "only the victim's page holds a slot",
    );
    assert.equal(svc.service.hub.connectionCount, 2, "the bystander's and the victim's page");
    await victimStillWorks("at the end");
  });
});
