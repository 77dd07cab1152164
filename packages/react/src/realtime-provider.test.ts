/**
 * Server-side rendering: the hooks render their server snapshots and open nothing (effects do
 * not run on the server), so a page using them can be rendered by Next.js or any SSR host.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createRealtimeClient } from "@realtime/client";
import { FakeConnectivity, FakeEventSources, ManualTimers } from "@realtime/client/testing";
import type { RealtimeEvent } from "@realtime/protocol";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { RealtimeProvider } from "./realtime-provider.ts";
import { useChannelHistory } from "./use-channel-history.ts";
import { useConnectionState } from "./use-connection-state.ts";
import { useEventChannel } from "./use-event-channel.ts";
import { usePresence } from "./use-presence.ts";

interface Chat extends RealtimeEvent {
  type: "chat";
  content: string;
}

function Page() {
  const { state } = useConnectionState();
  const presence = usePresence("channel:a");
  useEventChannel("channel:a", { onEvent: () => {}, history: 10 });
  const log = useChannelHistory("channel:a");
  return createElement(
    "p",
    null,
    `${state}/${presence?.status}/${presence?.users.length}/${log.loading}/${log.events.length}`,
  );
}

describe("RealtimeProvider and the hooks on the server", () => {
  it("render their initial state and open no stream", async () => {
    const sources = new FakeEventSources();
    // A typed client: the provider takes it as it is (npm run check type-checks this).
    const client = createRealtimeClient<{ chat: Chat }>({
      url: "http://rt.test",
      eventSource: sources.factory,
      timers: new ManualTimers(),
      online: new FakeConnectivity(),
      fetch: () => Promise.reject(new Error("nothing is fetched on the server")),
    });
    const html = renderToString(createElement(RealtimeProvider, { client }, createElement(Page)));
    assert.equal(html, "<p>closed/loading/0/true/0</p>");
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(sources.all.length, 0);
    assert.equal(client.state, "closed");
  });

  it("refuses to run outside a provider, saying so", () => {
    assert.throws(() => renderToString(createElement(Page)), /no <RealtimeProvider>/);
  });
});
