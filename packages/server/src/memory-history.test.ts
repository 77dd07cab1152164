import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { runHistoryContract } from "./testing/history-contract.ts";

// A memory history is lost only with its process, so the "lost history" case runs on Redis.
runHistoryContract("MemoryBroker", async () => {
  const size = 50;
  const store = new MemoryBroker({ bus: new MemoryBus({ retention: { size } }) });
  return { store, size, teardown: () => store.close() };
});
