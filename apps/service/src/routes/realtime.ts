/**
 * The service's streams, publish API and readiness, served by the `@realtime/fastify` plugin —
 * the one way to serve a stream — with the service's own pieces plugged in: the token
 * authentication (`auth.ts`), the channel access rules (`auth/access.ts`), the grant watch, the
 * route limits and the OpenAPI docs.
 *
 * - `GET /api/events?channel=<name>[&channel=<name>…]`: one SSE stream carrying several
 *   channels; resumes with `Last-Event-ID` (or `lastEventId`).
 * - `POST /api/publish { channel, event }` → 202 `{ channel, offset }`: for backend services in
 *   any language, with a service token that has the `publish` scope (user tokens get 403);
 *   `Idempotency-Key` makes a retry safe.
 * - `GET /api/channels/:channel/messages?limit&before`: a channel's recent events, with the
 *   cursor that continues the stream exactly after them (history-route.ts of the plugin).
 * - `GET /readyz`: should this pod get new streams (false while draining or while the broker is
 *   not confirmed live)?
 */

import { realtime } from "@realtime/fastify";
import { parseChannel, ResetReason } from "@realtime/protocol";
import type { Broker, Hub, Metrics, RealtimeUser } from "@realtime/server";
import type { FastifyInstance } from "fastify";
import { json, type RouteDoc } from "../api-docs.ts";
import { type ChannelAccess, mayPublish, requirePublisher } from "../auth/access.ts";
import type { GrantWatch } from "../auth/grant-watch.ts";
import { type Identity, publisherOf } from "../auth/identity.ts";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import { channelNamed, type RouteLimit } from "../security/route-options.ts";
import { TOKEN_EXPIRY_MARGIN_MS } from "../security/streams.ts";

export interface RealtimeRoutesDeps {
  hub: Hub;
  broker: Broker;
  auth: Auth;
  access: ChannelAccess;
  /** Watches the backend's grants of open streams; null without `AUTHZ_URL`. */
  grantWatch: GrantWatch | null;
  config: Config;
  metrics: Metrics;
}

/** A verified token, as the plugin sees its user. */
interface TokenUser extends RealtimeUser {
  readonly identity: Identity;
}

const DOCS = {
  events: {
    tag: "streams",
    summary: "Open the Server-Sent Events stream of one or more channels",
    description:
      "One stream carries up to `MAX_CHANNELS_PER_STREAM` channels. Resume with `Last-Event-ID` (or `lastEventId`): the cursor holds every channel's position, so a reconnect may land on any pod. Application events have no `event:` field; control events are `reset` and `close` (code 3001 while a pod drains, with a jittered `retry:`). See docs/protocol.md.",
    responses: {
      200: {
        description:
          "The stream (`retry:` hint, a starting cursor, then events and `: hb` heartbeats)",
        content: { "text/event-stream": { schema: { type: "string" } } },
      },
      400: "Bad, too many or no channels",
      401: "No valid token",
      403: "A channel the access rules do not grant (another user's, or not granted by the token's `realtime` claim, `AUTHZ_URL` or `CHANNEL_DEFAULT_ACCESS`), or a service token",
      503: "At capacity or draining (`Retry-After`); the proxy tries another pod",
    },
  },
  publish: {
    tag: "input",
    summary: "Publish an event (backend services)",
    description:
      "Needs a service token with the `publish` scope (`npm run token`). `event` needs a `type` (`^[a-z][a-z0-9_.-]{0,63}$`) and is at most 16 KiB of JSON. With `Idempotency-Key`, a retry of a publish already accepted (same service, same channel, within `IDEMPOTENCY_WINDOW_MS`) publishes nothing and gets the first answer, with `Idempotent-Replayed: true`.",
    responses: {
      202: json(
        "The event's position in its channel (a replay: the first publish's, with `Idempotent-Replayed: true`)",
        {
          type: "object",
          required: ["channel", "offset"],
          properties: { channel: { type: "string" }, offset: { type: "integer", minimum: 1 } },
        },
      ),
      400: "Invalid channel or event; `RT_ERR_BAD_IDEMPOTENCY_KEY` for a bad `Idempotency-Key`",
      401: "No valid token",
      403: "Not a service token with the publish scope, or a channel the access rules do not let it publish on",
      503: "The broker did not accept it",
    },
  },
  history: {
    tag: "streams",
    summary: "A channel's recent events, with the cursor to continue live from",
    description:
      "Oldest first. Open `/api/events?channel=<channel>&lastEventId=<cursor>` next: it continues exactly after the page. `before=<previous>` pages further back. `limit` defaults to 50 and is capped at 100.",
    responses: {
      200: json("A page of history", {
        type: "object",
        required: ["channel", "events", "cursor", "previous"],
        properties: {
          channel: { type: "string" },
          events: {
            type: "array",
            items: {
              type: "object",
              required: ["id", "event"],
              properties: {
                id: {
                  type: "string",
                  description: "The event's SSE id on a stream of this channel",
                },
                event: { type: "object" },
              },
            },
          },
          cursor: { type: "string" },
          previous: { type: ["string", "null"] },
          reset: { type: "string", enum: [ResetReason.EpochChanged] },
        },
      }),
      400: "Bad channel name, `limit` or `before`",
      401: "No valid token",
      403: "Not allowed to subscribe to the channel",
      503: "History is unavailable (`Retry-After`)",
    },
  },
  readyz: {
    tag: "operations",
    summary: "Readiness: should this pod get new streams?",
    description:
      "503 `RT_ERR_SHUTTING_DOWN` from the moment a drain starts (SIGTERM), 503 `RT_ERR_BROKER_UNAVAILABLE` while the broker is not confirmed live. Point the load balancer's readiness check here.",
    auth: false,
    responses: {
      200: json("Ready", {
        type: "object",
        required: ["status", "connections"],
        properties: {
          status: { type: "string", enum: ["ready"] },
          connections: { type: "integer", minimum: 0, description: "Streams open on this pod" },
        },
      }),
      503: "Draining or the broker is not live",
    },
  },
} as const satisfies Record<string, RouteDoc>;

/** Reads of history per user. */
const HISTORY_LIMIT: RouteLimit = { name: "history", by: "identity" };

/** Opens per user; as a stream route, also per IP and per channel named (rate-limit.ts). */
const STREAM_LIMIT: RouteLimit = { name: "streams", by: "identity" };

/** Per service token, and the channel's broadcast budget for those allowed to publish there. */
function publishLimit(access: ChannelAccess): RouteLimit {
  return {
    name: "publish",
    by: "identity",
    channelBudget: {
      channel: (body) => channelNamed(body, parseChannel),
      spentBy: async (identity, channel) =>
        mayPublish(identity) && (await access.allows(identity, channel, "publish")),
    },
  };
}

export async function registerRealtimeRoutes(
  app: FastifyInstance,
  deps: RealtimeRoutesDeps,
): Promise<void> {
  const { hub, broker, auth, access, grantWatch, config, metrics } = deps;
  await app.register(realtime<TokenUser, Awaited<ReturnType<ChannelAccess["require"]>>>, {
    hub,
    broker,
    routeOptions: {
      events: { config: { opensStream: true, limit: STREAM_LIMIT, docs: DOCS.events } },
      publish: { config: { limit: publishLimit(access), docs: DOCS.publish } },
      history: { config: { limit: HISTORY_LIMIT, docs: DOCS.history } },
      ready: { config: { docs: DOCS.readyz } },
    },
    maxChannelsPerStream: config.limits.maxChannelsPerStream,
    // Counted by the service's own stream admission (security/streams.ts): per user over every
    // pod (MAX_CONNECTIONS_PER_USER) and per address.
    maxStreamsPerUser: false,
    idempotencyWindowMs: config.publish.idempotencyWindowMs,
    async authenticate(request) {
      const identity = await auth.authenticate(request);
      const id = identity.kind === "user" ? identity.userId : identity.service;
      return {
        id,
        name: identity.kind === "user" ? identity.userName : identity.service,
        // The hub closes at its first sweep after this: ending no later than the token's exp.
        expiresAt: identity.expiresAt - TOKEN_EXPIRY_MARGIN_MS,
        identity,
      };
    },
    async authorize({ user, channels, action }) {
      if (action === "publish") requirePublisher(user.identity);
      return access.require(user.identity, channels, action);
    },
    publisherOf: (user) => publisherOf(user.identity),
    onStream: (stream, { user, authorization }) =>
      grantWatch?.watch(stream, user.identity, authorization),
    onStreamRefused: (code) => metrics.connectionRefused(code),
  });
}
