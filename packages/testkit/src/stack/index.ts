/** The reference stack (nginx over pods over Redis) and its rolling restart. */
export * from "./nginx.ts";
export * from "./rolling-restart.ts";
export * from "./stack.ts";
