/** Test helpers of `@realtime/redis` (test Redis itself is `@realtime/testkit/redis`). */
export { ClusterAdmin } from "./cluster-admin.ts";
