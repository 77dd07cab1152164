/**
 * The web app in the system Chromium against the real service started in-process: two people
 * chat and see each other online, switch and join rooms, reload, and survive a stream the
 * server cuts. Input goes in as HTTP POSTs; output comes back only over the page's one
 * EventSource.
 */
import assert from "node:assert/strict";
import type { Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { decodeCursor, lookupCursor } from "@realtime/protocol";
import { prepareWebApp, type RunningService, startService } from "@realtime/testkit/service";
import type { Browser, Request } from "playwright-core";
import {
  eventually,
  exceptDisconnects,
  joinRoom,
  launchBrowser,
  logLines,
  openRoom,
  openUser,
  PHONE,
  recordStatus,
  resetNotice,
  screenshot,
  sendMessage,
  signIn,
  type User,
  waitForLine,
  waitForOnline,
  waitForSignedIn,
  waitForStatus,
} from "./browser.ts";
import { watchEventStreams } from "./event-streams.ts";

const GENERAL = "channel:general";
/** Offline is announced one grace period after the last connection ends. */
const FAST_PRESENCE = { PRESENCE_GRACE_MS: "300" };

describe("web app in Chromium: chat and presence", { timeout: 60_000 }, () => {
  let browser: Browser;
  before(async () => {
    [browser] = await Promise.all([launchBrowser(), prepareWebApp()]);
  });
  after(async () => {
    await browser?.close();
  });

  /** Runs `body` with a fresh service and closes browsers before the service stops. */
  async function withService(
    env: Record<string, string>,
    body: (svc: RunningService, users: User[]) => Promise<void>,
  ): Promise<void> {
    const svc = await startService(env);
    const users: User[] = [];
    try {
      await body(svc, users);
    } finally {
      await Promise.all(users.map((user) => user.close()));
      await svc.stop();
    }
  }

  test("two users chat live, see each other online, switch rooms and reload", async () => {
    await withService(FAST_PRESENCE, async (svc, users) => {
      const ada = await openUser(browser);
      const bob = await openUser(browser);
      users.push(ada, bob);
      const streamUrls: string[] = [];
      ada.page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/api/events") {
          assert.equal(request.resourceType(), "eventsource");
          streamUrls.push(request.url());
        }
      });

      await signIn(ada.page, svc.url, "Ada");
      await signIn(bob.page, svc.url, "Bob");
      for (const user of [ada, bob]) await waitForOnline(user.page, "general", ["Ada", "Bob"]);

      // One EventSource per page carries every joined room and the user's own channel.
      assert.equal(svc.service.hub.connectionCount, 2, "one stream per page");
      const channels = new URL(streamUrls.at(-1) ?? "").searchParams.getAll("channel").sort();
      assert.deepEqual(channels.filter((c) => c.startsWith("channel:")).sort(), [
        "channel:general",
        "channel:help",
        "channel:random",
      ]);
      assert.equal(channels.filter((c) => c.startsWith("user:")).length, 1);

      await sendMessage(ada.page, "Hello Bob");
      await waitForLine(bob.page, "Ada: Hello Bob");
      await waitForLine(ada.page, "Ada: Hello Bob");
      await sendMessage(bob.page, "Hi Ada, I see you live");
      for (const user of [ada, bob]) {
        // Each page shows a message when its own stream brings it (Bob's own included): that
        // Ada's page has it says nothing about Bob's.
        await waitForLine(user.page, "Bob: Hi Ada, I see you live");
        assert.deepEqual(await logLines(user.page), [
          "Ada: Hello Bob",
          "Bob: Hi Ada, I see you live",
        ]);
      }

      // Messages in a room that is not open count as unread, and are there when it opens.
      await openRoom(bob.page, "random");
      await sendMessage(bob.page, "Over here in random");
      const randomButton = ada.page
        .getByRole("navigation", { name: "Rooms" })
        .getByRole("button", { name: "random, 1 unread" });
      await randomButton.waitFor();
      await openRoom(ada.page, "random");
      await waitForLine(ada.page, "Bob: Over here in random");

      // Joining a room by name: the channel grammar is checked before anything is sent.
      await ada.page.getByLabel("Join room by name").fill("no spaces please");
      await ada.page.getByRole("button", { name: "Join", exact: true }).click();
      await ada.page.getByText("No spaces: use - or _ instead").waitFor();
      await joinRoom(ada.page, "design-review");
      await joinRoom(bob.page, "#design-review");
      await waitForOnline(ada.page, "design-review", ["Ada", "Bob"]);
      await sendMessage(bob.page, "Welcome to design-review");
      await waitForLine(ada.page, "Bob: Welcome to design-review");
      // Joining reopened each page's stream with the new room. The new ones are live (Ada saw
      // Bob join and speak); the server learns that the old ones closed on their own
      // connections, in no fixed order with that: wait until only one per page is left.
      await eventually("one stream per page after joining a room", () =>
        svc.service.hub.connectionCount === 2 ? true : undefined,
      );

      // A third person for the pictures: three online, a message waiting in another room.
      await openRoom(ada.page, "general");
      await openRoom(bob.page, "general");
      const cleo = await openUser(browser);
      users.push(cleo);
      await signIn(cleo.page, svc.url, "Cleo");
      await waitForOnline(bob.page, "general", ["Ada", "Bob", "Cleo"]);
      const conversation: [User, string][] = [
        [ada, "Can you see who is online?"],
        [bob, "Yes: you, Cleo and me. It updates live."],
        [cleo, "Just joined. How does it work?"],
        [ada, "Messages go in as a POST and come back over one EventSource. No WebSockets."],
      ];
      for (const [user, text] of conversation) await sendMessage(user.page, text);
      await openRoom(cleo.page, "help");
      await sendMessage(cleo.page, "Anyone around to help with the Redis set-up?");
      await bob.page.getByRole("button", { name: "help, 1 unread" }).waitFor();
      await waitForLine(bob.page, `Ada: ${conversation.at(-1)?.[1]}`);
      await bob.page.getByLabel("Message", { exact: true }).fill("Nice! Works across pods too");
      await screenshot(ada.page, "chat-ada.png");
      await screenshot(bob.page, "chat-bob.png", "chat.png");
      await bob.page.getByLabel("Message", { exact: true }).fill("");
      assert.deepEqual(cleo.problems, []);
      await cleo.close();
      await waitForOnline(ada.page, "general", ["Ada", "Bob"]);

      // A reload keeps the session (HttpOnly cookie) and what the page showed (saved with the
      // stream's cursor), and resumes from that cursor: nothing doubled, nothing lost.
      const before = await logLines(ada.page);
      await ada.page.reload();
      await waitForSignedIn(ada.page, "Ada");
      await sendMessage(bob.page, "Welcome back");
      await waitForLine(ada.page, "Bob: Welcome back");
      assert.deepEqual(await logLines(ada.page), [...before, "Bob: Welcome back"]);

      // Bob signs out: Ada sees him go (after the grace period).
      await bob.page.getByRole("button", { name: "Sign out" }).click();
      await bob.page.getByLabel("Your name").waitFor();
      await waitForOnline(ada.page, "general", ["Ada"]);

      for (const user of [ada, bob]) {
        assert.deepEqual(user.problems, [], "no console errors and no page errors");
      }
    });
  });

  test("a room opened later shows what was said before, then each live message once, in order", async () => {
    await withService({ ...FAST_PRESENCE, RATE_LIMIT_CHAT_MAX: "0" }, async (svc, users) => {
      const ada = await openUser(browser);
      const bob = await openUser(browser);
      users.push(ada, bob);
      await signIn(ada.page, svc.url, "Ada");
      const earlier = ["Morning all", "Standup moved to 10:30", "Notes are in the doc"];
      for (const text of earlier) await sendMessage(ada.page, text);
      await waitForLine(ada.page, `Ada: ${earlier.at(-1)}`);

      // Bob's page opens #general after all that was said: it shows it from history.
      await signIn(bob.page, svc.url, "Bob");
      await waitForLine(bob.page, `Ada: ${earlier.at(-1)}`);
      assert.deepEqual(
        await logLines(bob.page),
        earlier.map((text) => `Ada: ${text}`),
      );
      await sendMessage(ada.page, "Bob, you made it");
      await waitForLine(bob.page, "Ada: Bob, you made it");
      assert.deepEqual(await logLines(bob.page), [
        ...earlier.map((text) => `Ada: ${text}`),
        "Ada: Bob, you made it",
      ]);

      // A room with more than a page of history: the last messages, then "Load older".
      const carol = await svc.login("Carol");
      const archive = Array.from({ length: 120 }, (_, i) => `note ${i}`);
      for (const content of archive) {
        const { status } = await svc.post("/api/chat/messages", carol.token, {
          channel: "archive",
          content,
        });
        assert.equal(status, 204);
      }
      await joinRoom(bob.page, "archive");
      await waitForLine(bob.page, "Carol: note 119");
      const shown = await logLines(bob.page);
      assert.deepEqual(
        shown,
        archive.slice(-shown.length).map((text) => `Carol: ${text}`),
        "the last messages, in order",
      );
      assert.ok(shown.length >= 30 && shown.length < 120, `${shown.length} shown at first`);
      const older = bob.page.getByRole("button", { name: "Load older messages" });
      await older.click();
      await waitForLine(bob.page, "Carol: note 0");
      await older.waitFor({ state: "detached" });
      assert.deepEqual(
        await logLines(bob.page),
        archive.map((text) => `Carol: ${text}`),
      );
      // The reader stays where they were reading (the oldest message shown before), not
      // thrown to the top or the bottom, also when a message arrives meanwhile.
      const inView = (text: string) =>
        bob.page.evaluate((wanted) => {
          const scroller = document.querySelector(".messages") as HTMLElement;
          const item = [...document.querySelectorAll(".msg")].find(
            (msg) => msg.querySelector(".msg-text")?.textContent === wanted,
          );
          if (!item) return false;
          const box = item.getBoundingClientRect();
          const view = scroller.getBoundingClientRect();
          return box.bottom > view.top && box.top < view.bottom;
        }, text);
      const firstShown = shown[0]?.slice("Carol: ".length) ?? "";
      assert.ok(await inView(firstShown), `${firstShown} is still in view`);
      assert.equal(await inView("note 0"), false);
      assert.equal(await inView("note 119"), false);
      const { status } = await svc.post("/api/chat/messages", carol.token, {
        channel: "archive",
        content: "and one more, live",
      });
      assert.equal(status, 204);
      await waitForLine(bob.page, "Carol: and one more, live");
      assert.deepEqual(await logLines(bob.page), [
        ...archive.map((text) => `Carol: ${text}`),
        "Carol: and one more, live",
      ]);
      await screenshot(bob.page, "history.png");
      for (const user of [ada, bob]) assert.deepEqual(user.problems, []);
    });
  });

  test("a phone-sized screen shows one section at a time", async () => {
    await withService({}, async (svc, users) => {
      const ada = await openUser(browser, PHONE);
      users.push(ada);
      const bob = await svc.login("Bob");
      await signIn(ada.page, svc.url, "Ada");
      for (const content of ["Morning! Anyone around?", "Trying the app on my phone"]) {
        const { status } = await svc.post("/api/chat/messages", bob.token, {
          channel: "general",
          content,
        });
        assert.equal(status, 204);
      }
      await waitForLine(ada.page, "Bob: Trying the app on my phone");
      await sendMessage(ada.page, "Here, on a phone-sized screen");
      await waitForLine(ada.page, "Ada: Here, on a phone-sized screen");
      // Nothing wider than the screen.
      const overflow = await ada.page.evaluate(
        () => document.documentElement.scrollWidth - window.innerWidth,
      );
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await screenshot(ada.page, "mobile.png", "mobile.png");

      await ada.page.getByRole("button", { name: /^People/ }).click();
      await waitForOnline(ada.page, "general", ["Ada"]);
      await ada.page.getByRole("button", { name: /^Generate/ }).click();
      await ada.page.getByLabel("Prompt").waitFor();
      await screenshot(ada.page, "mobile-generate.png");
      await ada.page.getByRole("button", { name: "Chat", exact: true }).click();
      await joinRoom(ada.page, "phone-room");
      assert.deepEqual(ada.problems, []);
    });
  });

  test("the client resumes by itself after the server cuts the stream", async () => {
    const env = { RETRY_MS: "300", RETRY_JITTER_MS: "200" };
    await withService(env, async (svc, users) => {
      const streams = watchEventStreams(svc.service.app.server as unknown as Server);
      const ada = await openUser(browser);
      users.push(ada);
      const { page } = ada;
      const browserRequests: Request[] = [];
      page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/api/events") browserRequests.push(request);
      });

      await signIn(page, svc.url, "Ada");
      const bob = await svc.login("Bob");
      const say = async (content: string) => {
        const { status } = await svc.post("/api/chat/messages", bob.token, {
          channel: "general",
          content,
        });
        assert.equal(status, 204, `POST of "${content}"`);
      };
      // Ada's own `online` is on the room too: published before the message, so the message
      // is the room's last event when the page shows it (the position compared below).
      await svc.service.presence.flush();
      await say("before the cut");
      await waitForLine(page, "Bob: before the cut");
      const shown = await logLines(page);
      const seenOffset = (await svc.service.broker.position(GENERAL)).offset;
      assert.equal(streams.requests.length, 1);
      const statusSeen = await recordStatus(page);

      // The server ends the stream; the client now waits out its backoff (up to 1 s).
      assert.equal(streams.cutOpenStreams(), 1);
      await say("while away 1");
      await say("while away 2");

      // The client reconnects on its own, resuming from its cursor. Wait for the new request
      // first: right after the cut the badge may still read "connected".
      await eventually("the client's own reconnect", () =>
        streams.requests.length >= 2 ? true : undefined,
      );
      await waitForStatus(page, "connected");
      const seen = await statusSeen();
      assert.ok(
        seen.some((text) => text.startsWith("reconnecting")),
        `the badge showed the drop before it reconnected: ${JSON.stringify(seen)}`,
      );
      assert.equal(streams.requests.length, 2, "exactly one reconnect");
      const [first, reconnect] = streams.requests;
      const query = (url = "") => new URL(url, "http://x").searchParams;
      assert.deepEqual(
        query(reconnect?.url).getAll("channel"),
        query(first?.url).getAll("channel"),
        "same channels",
      );

      // Server side: the cursor the client sent points at the last event it displayed.
      const lastEventId = query(reconnect?.url).get("lastEventId");
      assert.ok(lastEventId, "the reconnect carries the cursor");
      const cursor = decodeCursor(lastEventId);
      assert.ok(cursor, `lastEventId is one of our cursors: ${lastEventId}`);
      const { epoch } = await svc.service.broker.position(GENERAL);
      assert.deepEqual(lookupCursor(cursor, GENERAL, epoch), {
        kind: "position",
        offset: seenOffset,
      });
      // Browser side: the same URL, from one new EventSource.
      assert.equal(browserRequests.length, 2);
      assert.equal(browserRequests[1]?.resourceType(), "eventsource");

      await say("after the reconnect");
      await waitForLine(page, "Bob: after the reconnect");
      const missed = ["Bob: while away 1", "Bob: while away 2"];
      // The server replays what the page missed from history, in order, before going live:
      // no reset notice, no gap, no duplicate. The live message comes last, so this is final.
      assert.deepEqual(await logLines(page), [...shown, ...missed, "Bob: after the reconnect"]);
      assert.equal(await resetNotice(page).count(), 0);

      await screenshot(page, "reconnected.png");
      streams.stop();
      assert.deepEqual(exceptDisconnects(ada.problems), [], "no other console or page errors");
    });
  });
});
