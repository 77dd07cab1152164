/**
 * What other workspaces may use of the service: building it in-process (the test kit's
 * `startService`, the bench's abuse runs) and signing tokens the way it checks them. The
 * processes themselves start from `main.ts` and `worker-main.ts`.
 */
export { buildApp, type Service } from "./app.ts";
export { createAuth } from "./auth.ts";
export { type Config, loadConfig } from "./config.ts";
export { WEB_DIST_DIR } from "./routes/page.ts";
