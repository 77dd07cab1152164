/**
 * `POST /api/chat/messages` with `Idempotency-Key`: a retried message is posted once, the
 * retry answers 204 with `Idempotent-Replayed: true`, and keys are per user and per room.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type RunningService, startService } from "@realtime/testkit/service";
import { openHttp1, type SseClient } from "@realtime/testkit/sse-client";

const chatOf = (e: { event?: string | undefined; data: string }) => {
  if (e.event !== undefined) return null;
  const data = JSON.parse(e.data) as Record<string, unknown>;
  return data.type === "chat" ? data : null;
};

describe("POST /api/chat/messages with Idempotency-Key", () => {
  let svc: RunningService;
  before(async () => {
    svc = await startService();
  });
  after(() => svc.stop());

  /** The chat messages of `stream` once `last` arrived, as `userName: content`. */
  async function chatUntil(stream: SseClient, last: string): Promise<string[]> {
    await stream.waitFor((e) => chatOf(e)?.content === last);
    return stream.events.flatMap((e) => {
      const chat = chatOf(e);
      return chat ? [`${chat.userName}: ${chat.content}`] : [];
    });
  }

  it("a retried message is posted once; the retry gets 204 and the replay header", async () => {
    const ada = await svc.login("Ada");
    const stream = await openHttp1(`${svc.url}/api/events?channel=channel:idem_chat`, {
      authorization: `Bearer ${ada.token}`,
    });
    const key = { "idempotency-key": "msg-0001" };
    const body = { channel: "idem_chat", content: "hello once" };
    const first = await svc.post("/api/chat/messages", ada.token, body, key);
    assert.equal(first.status, 204);
    assert.equal(first.headers["idempotent-replayed"], undefined);
    for (let i = 0; i < 3; i++) {
      const retry = await svc.post("/api/chat/messages", ada.token, body, key);
      assert.equal(retry.status, 204, "the same status as the original");
      assert.equal(retry.body, null);
      assert.equal(retry.headers["idempotent-replayed"], "true");
    }
    await svc.post("/api/chat/messages", ada.token, { channel: "idem_chat", content: "end" });
    assert.deepEqual(await chatUntil(stream, "end"), ["Ada: hello once", "Ada: end"]);
    stream.close();
  });

  it("another user's same key, and the same key in another room, are posted", async () => {
    const ada = await svc.login("Ada");
    const bob = await svc.login("Bob");
    const stream = await openHttp1(
      `${svc.url}/api/events?channel=channel:idem_users&channel=channel:idem_users2`,
      { authorization: `Bearer ${ada.token}` },
    );
    const key = { "idempotency-key": "same-key" };
    const post = (token: string, channel: string, content: string) =>
      svc.post("/api/chat/messages", token, { channel, content }, key);
    const answers = [
      await post(ada.token, "idem_users", "from ada"),
      await post(bob.token, "idem_users", "from bob"),
      await post(ada.token, "idem_users2", "ada elsewhere"),
      await post(bob.token, "idem_users", "from bob"),
      // The same key for another message is not a retry: refused, nothing posted.
      await post(bob.token, "idem_users", "bob again"),
    ];
    assert.deepEqual(
      answers.map((a) => [a.status, a.headers["idempotent-replayed"] ?? "-"]),
      [
        [204, "-"],
        [204, "-"],
        [204, "-"],
        [204, "true"],
        [422, "-"],
      ],
    );
    assert.equal(
      (answers[4]?.body as { code?: string } | undefined)?.code,
      "RT_ERR_IDEMPOTENCY_KEY_REUSED",
    );
    await svc.post("/api/chat/messages", ada.token, { channel: "idem_users", content: "end" });
    const chats = await chatUntil(stream, "end");
    assert.deepEqual(
      chats.filter((c) => c !== "Ada: ada elsewhere"),
      ["Ada: from ada", "Bob: from bob", "Ada: end"],
    );
    assert.ok(chats.includes("Ada: ada elsewhere"));
    stream.close();
  });

  it("400 RT_ERR_BAD_IDEMPOTENCY_KEY for a bad key, and nothing is posted", async () => {
    const ada = await svc.login("Ada");
    for (const bad of ["", "with space", "k".repeat(129), "\u00fc"]) {
      const res = await svc.post(
        "/api/chat/messages",
        ada.token,
        { channel: "idem_bad", content: "never" },
        { "idempotency-key": bad },
      );
      assert.equal(res.status, 400, JSON.stringify(bad));
      assert.equal((res.body as { code: string }).code, "RT_ERR_BAD_IDEMPOTENCY_KEY");
    }
    assert.equal((await svc.service.broker.position("channel:idem_bad")).offset, 0);
  });
});
