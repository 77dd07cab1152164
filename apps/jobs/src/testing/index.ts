/** Test helpers of `@realtime/jobs`. */
export { testJobsConfig } from "./config.ts";
export { inspectGif } from "./gif-inspect.ts";
