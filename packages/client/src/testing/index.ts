/** Test doubles for apps that test code built on `@realtime/client`. */

export { FakeConnectivity } from "./fake-connectivity.ts";
export type { FakeEventSourceOptions } from "./fake-event-source.ts";
export { FakeEventSource, FakeEventSources } from "./fake-event-source.ts";
export { ManualTimers } from "./manual-timers.ts";
