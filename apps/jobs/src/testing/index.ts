/** Test helpers of `@realtime/jobs`: the shared {@link JobStore} contract and test settings. */
export { testJobsConfig } from "./config.ts";
export { inspectGif } from "./gif-inspect.ts";
export type { JobStorePair } from "./job-store-contract.ts";
export { queuedRecord, runJobStoreContract } from "./job-store-contract.ts";
