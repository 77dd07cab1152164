/**
 * The server dies under the page and comes back on the same port, in-process, in the system
 * Chromium: the badge follows the client's state machine (reconnecting in N s, then
 * connected), messages posted while the page was away appear in order with no reset notice,
 * and a server that comes back without its history (and with a new key, as `npm start` in
 * development does) makes the page sign in again and say what could not be replayed. The
 * network going away shows "offline".
 */
import assert from "node:assert/strict";
import type { Server, Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { MemoryBroker, MemoryBus } from "@realtime/server";
import type { Service } from "@realtime/service";
import { prepareWebApp, startService } from "@realtime/testkit/service";
import type { Browser } from "playwright-core";
import {
  exceptDisconnects,
  launchBrowser,
  logLines,
  openUser,
  recordStatus,
  resetNotice,
  screenshot,
  sendMessage,
  signIn,
  type User,
  WAIT_MS,
  waitForLine,
  waitForOnline,
  waitForStatus,
} from "./browser.ts";

/**
 * The client's backoff after a few refused attempts (full jitter over 1, 2, 4, 8 s windows):
 * how long a page may take to come back once the server listens again.
 */
const BACKOFF_WAIT_MS = 20_000;

/** Every TCP connection a service accepts, so a "kill" can drop them all at once. */
function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  return sockets;
}

/**
 * As close to `kill -9` as one process allows: every connection is reset at once, with no
 * `close` event and no drain, then the service's resources are released and the port freed.
 */
async function kill(service: Service, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.resetAndDestroy();
  await service.shutdown(0);
}

/** A message from Carol, who uses the API, not the page. */
async function postAs(service: Service, token: string, content: string): Promise<void> {
  const response = await service.app.inject({
    method: "POST",
    url: "/api/chat/messages",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    payload: JSON.stringify({ channel: "general", content }),
  });
  assert.equal(response.statusCode, 204, `POST of "${content}": ${response.body}`);
}

describe("web app in Chromium: server restarts", { timeout: 60_000 }, () => {
  let browser: Browser;
  before(async () => {
    [browser] = await Promise.all([launchBrowser(), prepareWebApp()]);
  });
  after(async () => {
    await browser?.close();
  });

  test("killed and restarted: reconnecting, then connected, and nothing is lost", async () => {
    const env = { PRESENCE_GRACE_MS: "300" };
    const bus = new MemoryBus();
    const first = await startService(env, { broker: new MemoryBroker({ bus }) });
    const port = first.port;
    const services: Service[] = [first.service];
    const users: User[] = [];
    try {
      let sockets = trackSockets(first.service.app.server as unknown as Server);
      const ada = await openUser(browser);
      const bob = await openUser(browser);
      users.push(ada, bob);
      await signIn(ada.page, first.url, "Ada");
      await signIn(bob.page, first.url, "Bob");
      const { token: carol } = await first.login("Carol");
      await sendMessage(bob.page, "Before the restart");
      await waitForLine(ada.page, "Bob: Before the restart");
      const shown = await logLines(ada.page);
      const statusSeen = await recordStatus(ada.page);

      // 1. Killed. The page notices at once and counts down to its next attempt.
      await kill(first.service, sockets);
      await waitForStatus(ada.page, /^reconnecting/);
      await screenshot(ada.page, "reconnecting.png");
      // Bob sends while nothing answers: his page keeps trying, with one Idempotency-Key.
      await bob.page.getByLabel("Message", { exact: true }).fill("Typed while the server was down");
      await bob.page.getByRole("button", { name: "Send", exact: true }).click();
      await bob.page.getByText("Sending… the server is not answering yet").waitFor();

      // Restarted on the same port with the same broker history (the MemoryBus plays Redis).
      // Carol posts before it listens: the page cannot have seen these live.
      let { service: second } = await startService(env, {
        port,
        broker: new MemoryBroker({ bus }),
        beforeListen: async (service) => {
          services.push(service);
          sockets = trackSockets(service.app.server as unknown as Server);
          await postAs(service, carol, "Sent while the page was away 1");
          await postAs(service, carol, "Sent while the page was away 2");
        },
      });

      await waitForStatus(ada.page, "connected", BACKOFF_WAIT_MS);
      const seen = await statusSeen();
      assert.match(seen.join(" | "), /reconnecting in \d+ s/, "the badge counted down");
      assert.equal(seen.at(-1), "connected");
      await waitForLine(ada.page, "Carol: Sent while the page was away 2");
      await waitForLine(ada.page, "Bob: Typed while the server was down");
      await waitForStatus(bob.page, "connected", BACKOFF_WAIT_MS);
      // Accepted: the composer cleared by itself.
      await bob.page.waitForFunction(
        () => (document.getElementById("composer-input") as HTMLTextAreaElement).value === "",
      );
      await sendMessage(bob.page, "Back after the restart");
      await waitForLine(ada.page, "Bob: Back after the restart");
      // Replayed from history in order, then live; no reset notice, no duplicate.
      assert.deepEqual(await logLines(ada.page), [
        ...shown,
        "Carol: Sent while the page was away 1",
        "Carol: Sent while the page was away 2",
        "Bob: Typed while the server was down",
        "Bob: Back after the restart",
      ]);
      assert.equal(await resetNotice(ada.page).count(), 0);
      await waitForOnline(ada.page, "general", ["Ada", "Bob"]);
      await screenshot(ada.page, "reconnected.png");

      // 2. Killed again, and back the way `npm start` comes back in development: an empty
      // broker (history lost) and a new random JWT key (every session cookie is void). The
      // stream is refused (401): the page signs in again with the same name, the server cannot
      // replay and says so with `reset`, and the page tells the person and marks the gap.
      await kill(second, sockets);
      await waitForStatus(ada.page, /^reconnecting/);
      const newKey = { ...env, JWT_SECRET: "a-new-random-key-a-new-random-key-0123" };
      ({ service: second } = await startService(newKey, {
        port,
        broker: new MemoryBroker({ bus: new MemoryBus() }),
      }));
      services.push(second);
      await waitForStatus(ada.page, "connected", BACKOFF_WAIT_MS);
      await ada.page.getByText("Signed in as Ada", { exact: true }).waitFor();
      await resetNotice(ada.page).first().waitFor({ timeout: WAIT_MS });
      await ada.page.getByText("Some messages may be missing here").waitFor();
      await waitForStatus(bob.page, "connected", BACKOFF_WAIT_MS);
      await sendMessage(bob.page, "Live again");
      await waitForLine(ada.page, "Bob: Live again");
      // Presence was refetched: both are there on the new server.
      await waitForOnline(ada.page, "general", ["Ada", "Bob"]);
      await screenshot(ada.page, "history-lost.png");

      // 3. The network goes away: offline, no retries; back: connected at once.
      await ada.context.setOffline(true);
      await waitForStatus(ada.page, "offline");
      await ada.context.setOffline(false);
      await waitForStatus(ada.page, "connected");

      for (const user of users) {
        assert.deepEqual(
          exceptDisconnects(user.problems, { refusedWith: 401, postsRetried: true }),
          [],
          "no other console or page errors",
        );
      }
    } finally {
      await Promise.all(users.map((user) => user.close()));
      for (const service of services) await service.shutdown(0);
    }
  });
});
