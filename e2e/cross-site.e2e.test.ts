/**
 * Another site opens a stream as the user, in the system Chromium. The victim signs in on
 * http://localhost:<port>; a page on http://127.0.0.1:<other port> — another site (a different
 * host, so Chromium sends `Sec-Fetch-Site: cross-site`, and both are potentially trustworthy
 * origins, so it sends Fetch Metadata at all) — navigates the victim's browser to the stream
 * and presence URLs by `location =`, a link and `window.open`. The `SameSite=Lax` cookie goes
 * along with each (checked on the server), every navigation is refused with 403, the room
 * never sees the victim, and the victim's stream slots hold only their own page.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { ofType, openStream, request } from "@realtime/testkit/http";
import { prepareWebApp, type RunningService, startService } from "@realtime/testkit/service";
import type { Browser, Page, Response } from "playwright-core";
import {
  exceptDisconnects,
  launchBrowser,
  openUser,
  sendMessage,
  signIn,
  type User,
  WAIT_MS,
  waitForLine,
} from "./browser.ts";

/** The attacker's page: links to the victim's stream and presence. */
function attackerSite(streamUrl: string, presenceUrl: string): Promise<Server> {
  const html =
    "<!doctype html><title>Win a prize</title>" +
    `<a id="stream" href="${streamUrl}">Win a prize</a> ` +
    `<a id="presence" href="${presenceUrl}">Who is here?</a>`;
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end(html);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

describe("another site navigates the user's browser to the API", { timeout: 60_000 }, () => {
  let browser: Browser;
  before(async () => {
    [browser] = await Promise.all([launchBrowser(), prepareWebApp()]);
  });
  after(async () => {
    await browser?.close();
  });

  test("location =, a link and window.open to the stream and presence: refused, nothing joined", async () => {
    const svc: RunningService = await startService({ PRESENCE_GRACE_MS: "300" });
    const origin = `http://localhost:${svc.port}`;
    const streamUrl = `${origin}/api/events?channel=channel:trap`;
    const presenceUrl = `${origin}/api/channels/trap/presence`;
    const attacker = await attackerSite(streamUrl, presenceUrl);
    const attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`;
    const users: User[] = [];
    const bystander = await svc.login("Bystander");
    const watch = await openStream(`${svc.url}/api/events?channel=channel:trap`, {
      authorization: `Bearer ${bystander.token}`,
    });
    // What reached the service, with the headers exactly as they arrived.
    const arrived: { url: string; headers: IncomingHttpHeaders }[] = [];
    svc.service.app.server.on("request", (req) => {
      if (req.url?.includes("channel:trap") || req.url?.includes("/trap/presence")) {
        arrived.push({ url: req.url, headers: req.headers });
      }
    });
    try {
      assert.equal(watch.status, 200);
      const victim = await openUser(browser);
      users.push(victim);
      await signIn(victim.page, origin, "Victim");
      const me = (await victim.page.evaluate(() =>
        fetch("/api/auth/me").then((r) => r.json()),
      )) as { user: { id: string } };
      const victimId = me.user.id;
      const limits = svc.service.security.connectionLimits;
      assert.equal(limits.userCount(victimId), 1, "the victim's page holds one slot");

      // The attacker's page, opened in the victim's browser (same cookie jar).
      const evil: Page = await victim.context.newPage();
      const navigated = (url: string) =>
        victim.context.waitForEvent("response", {
          predicate: (r: Response) => r.url() === url,
          timeout: WAIT_MS,
        });
      const refused = async (response: Response, what: string) => {
        assert.equal(response.status(), 403, what);
        const body = (await response.json()) as { code: string; message: string };
        assert.equal(body.code, "RT_ERR_FORBIDDEN", what);
      };

      await evil.goto(attackerUrl);
      const [byScript] = await Promise.all([
        navigated(streamUrl),
        evil.evaluate((url) => {
          location.href = url;
        }, streamUrl),
      ]);
      await refused(byScript, "location =");

      await evil.goto(attackerUrl);
      const [byLink] = await Promise.all([navigated(streamUrl), evil.click("#stream")]);
      await refused(byLink, "a link");

      await evil.goto(attackerUrl);
      const [byPopup] = await Promise.all([
        navigated(streamUrl),
        evil.evaluate((url) => {
          window.open(url);
        }, streamUrl),
      ]);
      await refused(byPopup, "window.open");

      await evil.goto(attackerUrl);
      const [byPresenceLink] = await Promise.all([navigated(presenceUrl), evil.click("#presence")]);
      await refused(byPresenceLink, "a link to presence");

      // The attack was real: each navigation reached the service as cross-site, with the cookie.
      assert.equal(arrived.length, 4, JSON.stringify(arrived.map((a) => a.url)));
      for (const { url, headers } of arrived) {
        assert.match(String(headers.cookie), /(^|; )rt_session=/, `${url}: the cookie went along`);
        assert.equal(headers["sec-fetch-site"], "cross-site", url);
        assert.equal(headers["sec-fetch-mode"], "navigate", url);
        assert.equal(headers.origin, undefined, `${url}: a navigation sends no Origin`);
      }

      // Nothing joined: the room's presence never named the victim, before this marker (sent
      // once presence published every decision it had: they are ahead of it on the stream)…
      await svc.service.presence.flush();
      const marker = await request(`${svc.url}/api/chat/messages`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${bystander.token}`,
        },
        body: JSON.stringify({ channel: "trap", content: "marker" }),
      });
      assert.equal(marker.status, 204);
      await watch.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === "marker");
      const victimPresence = watch.events
        .filter(ofType("presence"))
        .filter((e) => (JSON.parse(e.data) as { userId: string }).userId === victimId);
      assert.deepEqual(victimPresence, [], "no presence event for the victim in the room");
      // …nor does the room's snapshot, and only the victim's own page holds a slot.
      const snapshot = await request(`${svc.url}/api/channels/trap/presence`, {
        headers: { authorization: `Bearer ${bystander.token}` },
      });
      assert.equal(snapshot.status, 200);
      const online = (snapshot.json?.users ?? []) as { userId: string }[];
      assert.ok(!online.some((u) => u.userId === victimId), snapshot.text);
      assert.equal(limits.userCount(victimId), 1, "no slot taken by the attack");
      assert.equal(svc.service.hub.connectionCount, 2, "the bystander's and the victim's page");

      // A link on the app's own page to an API read, opened in a new tab as "Open GIF" opens
      // /api/media/:jobId, is a same-origin navigation: still served.
      await victim.page.evaluate(() => {
        const link = document.createElement("a");
        link.id = "own-link";
        link.href = "/api/auth/me";
        link.target = "_blank";
        link.rel = "noreferrer";
        link.textContent = "me";
        document.body.append(link);
      });
      const [own] = await Promise.all([
        navigated(`${origin}/api/auth/me`),
        victim.page.click("#own-link"),
      ]);
      assert.equal(own.status(), 200, "an API read linked from our own page");

      // The victim's own page goes on, under the same cookie.
      await sendMessage(victim.page, "still here");
      await waitForLine(victim.page, "Victim: still here");
      assert.deepEqual(exceptDisconnects(victim.problems), []);
    } finally {
      watch.close();
      await Promise.all(users.map((user) => user.close()));
      await new Promise((resolve) => attacker.close(resolve));
      await svc.stop();
    }
  });
});
