/**
 * The same chat across two pods on Redis, in the system Chromium: two services in this process,
 * each with its own RedisBroker and Redis presence store on a private redis-server, Ada's page
 * on pod 1 and Bob's on pod 2. Messages and presence cross pods only through Redis.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startRedis, type TestRedis } from "@realtime/testkit/redis";
import { prepareWebApp, type RunningService, startService } from "@realtime/testkit/service";
import type { Browser } from "playwright-core";
import {
  joinRoom,
  launchBrowser,
  logLines,
  openUser,
  sendMessage,
  signIn,
  type User,
  waitForLine,
  waitForOnline,
} from "./browser.ts";

describe("web app in Chromium: two pods on Redis", { timeout: 60_000 }, () => {
  let browser: Browser;
  let redis: TestRedis;
  before(async () => {
    [browser, redis] = await Promise.all([launchBrowser(), startRedis(), prepareWebApp()]);
  });
  after(async () => {
    await browser?.close();
    await redis?.stop();
  });

  test("Ada on pod 1 and Bob on pod 2 chat and see each other online", async () => {
    const env = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: `e2e_${randomBytes(4).toString("hex")}`,
      PRESENCE_GRACE_MS: "300",
    };
    const pods: RunningService[] = [];
    const users: User[] = [];
    try {
      pods.push(await startService(env), await startService(env));
      const [pod1, pod2] = pods as [RunningService, RunningService];
      assert.equal(pod1.service.broker.constructor.name, "RedisBroker");
      const ada = await openUser(browser);
      const bob = await openUser(browser);
      users.push(ada, bob);

      await signIn(ada.page, pod1.url, "Ada");
      await signIn(bob.page, pod2.url, "Bob");
      assert.equal(pod1.service.hub.connectionCount, 1, "Ada's stream is on pod 1");
      assert.equal(pod2.service.hub.connectionCount, 1, "Bob's stream is on pod 2");
      for (const user of [ada, bob]) await waitForOnline(user.page, "general", ["Ada", "Bob"]);

      await sendMessage(ada.page, "Hello from pod 1");
      await waitForLine(bob.page, "Ada: Hello from pod 1");
      await sendMessage(bob.page, "Hello from pod 2");
      for (const user of [ada, bob]) {
        // Each page shows a message when its own stream (its own pod) brings it, Bob's own
        // included: Ada's page having it says nothing about Bob's.
        await waitForLine(user.page, "Bob: Hello from pod 2");
        assert.deepEqual(await logLines(user.page), [
          "Ada: Hello from pod 1",
          "Bob: Hello from pod 2",
        ]);
      }

      // A room made up on the spot works across pods too.
      await joinRoom(ada.page, "cross-pod");
      await joinRoom(bob.page, "cross-pod");
      await waitForOnline(ada.page, "cross-pod", ["Ada", "Bob"]);
      await sendMessage(bob.page, "Same room, other pod");
      await waitForLine(ada.page, "Bob: Same room, other pod");

      // Bob leaves: pod 2's presence reaches Ada on pod 1 through Redis.
      await bob.page.getByRole("button", { name: "Sign out" }).click();
      await waitForOnline(ada.page, "cross-pod", ["Ada"]);

      for (const user of users) assert.deepEqual(user.problems, []);
    } finally {
      await Promise.all(users.map((user) => user.close()));
      await Promise.all(pods.map((pod) => pod.stop()));
    }
  });
});
