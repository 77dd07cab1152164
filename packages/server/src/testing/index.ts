/** Test helpers for implementations of the server's interfaces (`@realtime/server/testing`). */
export type { BrokerPair, WaitForOptions } from "./broker-contract.ts";
export { collect, runBrokerContract, waitFor } from "./broker-contract.ts";
export { FakeConnection } from "./fake-connection.ts";
export type { HistoryFixture } from "./history-contract.ts";
export { runHistoryContract } from "./history-contract.ts";
export type { LedgerFixture } from "./ledger-contract.ts";
export { runConnectionLedgerContract } from "./ledger-contract.ts";
export { controlEvents, dataEvents, lastIdOf, parseSse } from "./parse-sse.ts";
export type { PresenceFixture } from "./presence-contract.ts";
export { CONTRACT_TIMINGS, runPresenceContract } from "./presence-contract.ts";
