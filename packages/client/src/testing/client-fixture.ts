/**
 * What the client tests share: a client wired to a fake EventSource, manual timers, a fixed
 * jitter (0.5, so delays are half the backoff window) and a switchable network.
 */

import type { RealtimeClientOptions } from "../client-api.ts";
import type { StateChange } from "../connection-state.ts";
import { createRealtimeClient } from "../realtime-client.ts";
import { FakeConnectivity } from "./fake-connectivity.ts";
import { type FakeEventSourceOptions, FakeEventSources } from "./fake-event-source.ts";
import { ManualTimers } from "./manual-timers.ts";

/** Lets queued microtasks (the one-per-tick channel sync, awaited callbacks) run. */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export function setup(
  options: Partial<RealtimeClientOptions> = {},
  fake: FakeEventSourceOptions = {},
) {
  const sources = new FakeEventSources(fake);
  const timers = new ManualTimers();
  const network = new FakeConnectivity();
  const client = createRealtimeClient({
    url: "http://rt.test",
    eventSource: sources.factory,
    timers,
    random: () => 0.5,
    online: network,
    fetch: () => Promise.reject(new Error("no fetch in this test")),
    ...options,
  });
  const changes: StateChange[] = [];
  client.onStateChange((change) => changes.push(change));
  const transitions = () => changes.map((c) => `${c.from}→${c.to}:${c.reason}`);
  return { client, sources, timers, network, changes, transitions };
}

export const chat = (channel: string, content: string) => ({
  type: "chat",
  channel,
  timestamp: "t",
  content,
});
