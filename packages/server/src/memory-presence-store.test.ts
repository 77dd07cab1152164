import { MemoryPresenceBackend, MemoryPresenceStore } from "./memory-presence-store.ts";
import { CONTRACT_TIMINGS, runPresenceContract } from "./testing/presence-contract.ts";

runPresenceContract("MemoryPresenceStore (pods on one MemoryPresenceBackend)", async () => {
  const backend = new MemoryPresenceBackend();
  return {
    pod: () => new MemoryPresenceStore({ backend, ...CONTRACT_TIMINGS }),
    teardown: async () => {},
  };
});
