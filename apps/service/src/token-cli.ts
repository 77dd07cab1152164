/**
 * Mints a service token for backend publishers: `npm run token -- <service> [scope…]`
 * (default scope `publish`). Uses the same JWT_SECRET/JWT_ISSUER/JWT_AUDIENCE as the pods.
 */
import { createAuth } from "./auth.ts";
import { ConfigError, loadConfig } from "./config.ts";

const [service, ...scopes] = process.argv.slice(2);
if (!service) {
  console.error("usage: npm run token -- <service-name> [scope ...]   (default scope: publish)");
  process.exit(64);
}
try {
  const config = loadConfig();
  if (config.auth.secretGenerated) {
    console.error(
      "JWT_SECRET is not set: a token signed with a random key is useless; set it first",
    );
    process.exit(78);
  }
  const auth = createAuth(config.auth);
  const token = await auth.issueServiceToken({
    service,
    scopes: scopes.length ? scopes : ["publish"],
  });
  process.stdout.write(`${token}\n`);
} catch (error) {
  console.error(
    `realtime: ${error instanceof ConfigError || error instanceof TypeError ? error.message : String(error)}`,
  );
  process.exit(78);
}
