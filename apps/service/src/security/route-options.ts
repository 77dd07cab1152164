/**
 * What a route declares about itself for the defences (`config: { limit, opensStream }` in its
 * options), so that its limit travels with it: renaming or adding a route cannot silently
 * leave it unlimited. `rate-limit.ts` and `streams.ts` read these as the routes are added.
 */
import type { ChannelName, parseChannel } from "@realtime/protocol";
import type { FastifyRequest, RouteOptions } from "fastify";
import type { Identity } from "../auth/identity.ts";
import type { RateLimitConfig } from "../config.ts";

/** Which of the `RATE_LIMIT_*` settings limits a route, by the name its refusals are counted under. */
export const ROUTE_LIMIT_SETTINGS = {
  chat: "chatPerUser",
  jobs: "jobsPerUser",
  publish: "publishPerService",
  login: "loginPerIp",
  streams: "streamsPerUser",
  presence: "presencePerUser",
  history: "historyPerUser",
} as const satisfies Record<string, keyof RateLimitConfig>;

/** A route's rate limit (`config: { limit }`). */
export interface RouteLimit {
  /** The limit: its setting ({@link ROUTE_LIMIT_SETTINGS}) and its label when it refuses. */
  readonly name: keyof typeof ROUTE_LIMIT_SETTINGS;
  /** Key by the token's identity (the client IP when there is none) or always by client IP. */
  readonly by: "identity" | "ip";
  /**
   * The route publishes to a channel, and spends that channel's broadcast budget
   * (`CHANNEL_PUBLISH_MAX`): how its body names the channel, and who may publish there (only
   * they spend the budget: the others are refused by the route).
   */
  readonly channelBudget?: {
    readonly channel: (body: unknown) => ChannelName | null;
    /** Whether `identity` may publish on `channel` (the route's own access decision). */
    readonly spentBy: (identity: Identity, channel: ChannelName) => boolean | Promise<boolean>;
  };
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** This route's rate limit (`security/rate-limit.ts`); absent: none. */
    limit?: RouteLimit;
    /**
     * This route opens SSE streams: the stream admission (`security/streams.ts`), the per-IP
     * and channels-named limits apply, and its refusals count as refused streams.
     */
    opensStream?: boolean;
  }
}

type HookName = "onRequest" | "preValidation" | "preHandler";

/** Appends a route-level hook, whatever shape the route declared its own in. */
export function addHook(
  route: RouteOptions,
  name: HookName,
  hook: (request: FastifyRequest, reply: never) => Promise<void>,
): void {
  const existing = route[name] as unknown;
  const list = Array.isArray(existing) ? existing : existing ? [existing] : [];
  (route as unknown as Record<HookName, unknown[]>)[name] = [...list, hook];
}

/** The channel a body names, when it names a valid one by `parse` (else the route answers 400). */
export function channelNamed(
  body: unknown,
  parse: (name: string) => ReturnType<typeof parseChannel>,
): ChannelName | null {
  if (typeof body !== "object" || body === null) return null;
  const raw = (body as { channel?: unknown }).channel;
  if (typeof raw !== "string") return null;
  const parsed = parse(raw);
  return parsed.ok ? parsed.channel.name : null;
}
