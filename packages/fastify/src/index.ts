export {
  AJV_OPTIONS,
  answerError,
  frameworkErrors,
  registerErrorHandling,
} from "./error-handler.ts";
export { NO_QUERY } from "./no-query.ts";
export type {
  HostRouteOptions,
  Realtime,
  RealtimePlugin,
  RealtimePluginOptions,
} from "./plugin.ts";
export { realtime, realtime as default } from "./plugin.ts";
