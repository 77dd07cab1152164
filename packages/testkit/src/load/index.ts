/** Load: publishers that pace events into pods (directly, or through the nginx stack). */
export * from "./proxy-publisher.ts";
export * from "./publisher.ts";
