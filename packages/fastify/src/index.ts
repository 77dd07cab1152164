export { CHANNEL_PARAMS, channelParam } from "./channel-param.ts";
export {
  AJV_OPTIONS,
  answerError,
  frameworkErrors,
  registerErrorHandling,
} from "./error-handler.ts";
export {
  DEFAULT_LIMIT as DEFAULT_HISTORY_LIMIT,
  MAX_LIMIT as MAX_HISTORY_LIMIT,
} from "./history-route.ts";
export type { HostRouteOptions } from "./host-route-options.ts";
export { NO_QUERY } from "./no-query.ts";
export type {
  Realtime,
  RealtimePlugin,
  RealtimePluginOptions,
} from "./plugin.ts";
export { realtime, realtime as default } from "./plugin.ts";
