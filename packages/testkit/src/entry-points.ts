/**
 * Where the service's processes start, resolved through the package's exports (so the kit
 * never reaches into `apps/service/src`, and loading it does not load the service).
 */
import { fileURLToPath } from "node:url";

/** `node <SERVICE_MAIN>` starts a pod (`npm start`). */
export const SERVICE_MAIN = fileURLToPath(import.meta.resolve("@realtime/service/main"));
/** `node <WORKER_MAIN>` starts a render worker (`npm run worker`). */
export const WORKER_MAIN = fileURLToPath(import.meta.resolve("@realtime/service/worker"));
