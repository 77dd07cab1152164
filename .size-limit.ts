/**
 * The browser client's size budget (`npm run size`; `e2e/packages/size.test.ts` holds `npm test`
 * to it): `@realtime/client` as built (`dist`, `npm run build`) and bundled with its one
 * dependency, `@realtime/protocol` (its `dist` too, not the workspace's `src`), minified by
 * rolldown and gzipped, as an app's bundler would ship it. The limits are in README.md and
 * packages/client/README.md too; the test holds them equal.
 */
import { fileURLToPath } from "node:url";

const protocol = fileURLToPath(new URL("packages/protocol/dist/index.js", import.meta.url));

/** Inside the workspace `@realtime/protocol` resolves to its sources; measure what is published. */
function publishedProtocol<Config extends { resolve?: Record<string, unknown> }>(config: Config) {
  return { ...config, resolve: { ...config.resolve, alias: { "@realtime/protocol": protocol } } };
}

export default [
  {
    name: "@realtime/client, whole entry",
    path: "packages/client/dist/index.js",
    gzip: true,
    // Measured 7.96 kB (0.1.0); the budget leaves ~17% for growth.
    limit: "9.3 kB",
    modifyRolldownConfig: publishedProtocol,
  },
  {
    name: "@realtime/client, createRealtimeClient only",
    path: "packages/client/dist/index.js",
    import: "{ createRealtimeClient }",
    gzip: true,
    // Measured 6.14 kB (0.1.0): what an app that only creates a client ships.
    limit: "7.2 kB",
    modifyRolldownConfig: publishedProtocol,
  },
];
