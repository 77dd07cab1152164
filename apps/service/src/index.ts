/**
 * What other workspaces may use of the service: building it in-process (the test kit's
 * `startService`, the bench's abuse runs), signing tokens the way it checks them, and
 * validating an environment as the processes would (the Kubernetes manifests' test). The
 * processes themselves start from `main.ts` and `worker-main.ts`.
 */
export { buildApp, type Service } from "./app.ts";
export { createAuth } from "./auth.ts";
export { type Config, ConfigError, type Env, loadConfig } from "./config.ts";
export { WEB_DIST_DIR } from "./routes/page.ts";
