import { MemoryConnectionLedger } from "./connection-ledger.ts";
import { runConnectionLedgerContract } from "./testing/ledger-contract.ts";

runConnectionLedgerContract("MemoryConnectionLedger", async () => ({
  ledger: (max) => new MemoryConnectionLedger({ max }),
  teardown: async () => {},
}));
