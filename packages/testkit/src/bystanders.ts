/**
 * The well-behaved users of the attack tests: Carol says something in the lobby and Bob,
 * listening there on his own stream, hears it — every message once, in order, and no reset.
 */
import assert from "node:assert/strict";
import { ofType, openStream, postJson, type Stream } from "./http.ts";
import type { RunningService } from "./service.ts";

export interface Bystanders {
  /** Carol says the next message; resolves once Bob has it. */
  chat(): Promise<void>;
  /** Bob has heard every message Carol said, in order, and no `reset`. */
  assertHeardEverything(): void;
  close(): void;
}

export async function startBystanders(svc: RunningService): Promise<Bystanders> {
  const carol = await svc.login("Carol");
  const bob = await svc.login("Bob");
  const stream: Stream = await openStream(`${svc.url}/api/events?channel=channel:lobby`, {
    authorization: `Bearer ${bob.token}`,
  });
  assert.equal(stream.status, 200, stream.text());
  await stream.waitFor((e) => e.event === "ready");
  let said = 0;
  return {
    async chat() {
      const content = `m${++said}`;
      const reply = await postJson(`${svc.url}/api/chat/messages`, carol.token, {
        channel: "lobby",
        content,
      });
      assert.equal(reply.status, 204, reply.text);
      await stream.waitFor((e) => ofType("chat")(e) && JSON.parse(e.data).content === content);
    },
    assertHeardEverything() {
      const heard = stream.events.filter(ofType("chat")).map((e) => JSON.parse(e.data).content);
      assert.deepEqual(
        heard,
        Array.from({ length: said }, (_, i) => `m${i + 1}`),
      );
      assert.equal(stream.events.filter((e) => e.event === "reset").length, 0, "no reset");
    },
    close: () => stream.close(),
  };
}
