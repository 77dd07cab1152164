/**
 * `GET /api/events?channel=<name>[&channel=<name>…]`: one SSE stream carrying several
 * channels. Everything that can fail is checked before the first byte, so a refusal is a plain
 * JSON error; once the stream is ready, the hub takes the raw response over.
 */
import type { Http2ServerRequest } from "node:http2";
import { type ChannelName, parseChannel, printable } from "@realtime/protocol";
import {
  type Connection,
  Http2StreamConnection,
  type Hub,
  type Metrics,
  NodeHttpConnection,
  SSE_HEADERS,
} from "@realtime/server";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { RouteDoc } from "../api-docs.ts";
import type { ChannelAccess } from "../auth/access.ts";
import type { GrantWatch } from "../auth/grant-watch.ts";
import type { Auth } from "../auth.ts";
import type { Config } from "../config.ts";
import { appError, Errors, refusalCode } from "../errors.ts";
import type { RouteLimit } from "../security/route-options.ts";
import { TOKEN_EXPIRY_MARGIN_MS } from "../security/streams.ts";

export interface EventsRouteDeps {
  hub: Hub;
  auth: Auth;
  access: ChannelAccess;
  /** Watches the backend's grants of open streams; null without `AUTHZ_URL`. */
  grantWatch: GrantWatch | null;
  config: Config;
  metrics: Metrics;
}

const querySchema = {
  type: "object",
  properties: {
    channel: {
      anyOf: [{ type: "string" }, { type: "array", items: { type: "string" }, maxItems: 256 }],
    },
    lastEventId: { type: "string", maxLength: 4096 },
  },
  required: ["channel"],
  additionalProperties: false,
} as const;

/** Opens per user; as a stream route, also per IP and per channel named (rate-limit.ts). */
const limit: RouteLimit = { name: "streams", by: "identity" };

const docs: RouteDoc = {
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
};

/**
 * No HEAD twin: Fastify would run this handler for a HEAD too, opening a whole stream (a slot,
 * presence joins, a connection counted) whose body the client never reads. A HEAD is answered
 * 405 with `Allow: GET` by the not-found handler instead.
 */
const routeOptions = {
  schema: { querystring: querySchema },
  exposeHeadRoute: false,
  config: { hubAction: "open", opensStream: true, limit, docs },
} as const;

export function registerEventsRoute(app: FastifyInstance, deps: EventsRouteDeps): void {
  const { hub, auth, access, grantWatch, config, metrics } = deps;
  app.get("/api/events", routeOptions, async (request, reply) => {
    try {
      const query = request.query as { channel: string | string[]; lastEventId?: string };
      const channels = parseChannels(query.channel, config.limits.maxChannelsPerStream);
      const identity = await auth.authenticate(request);
      // Before anything is subscribed or replayed: a resume is a new open, checked the same way.
      const decisions = await access.require(identity, channels, "subscribe");
      const header = request.headers["last-event-id"];
      // An empty Last-Event-ID means "no cursor" (EventSource only sends a non-empty one).
      const cursor = (Array.isArray(header) ? header[0] : header) || query.lastEventId || null;
      const abort = new AbortController();
      // The response's close (not the request's, which fires once the request is read) says the
      // client went away while the stream was being prepared. Removed once the stream is
      // connected (the connection reports its close to the hub from then on): left in place,
      // it would hold the controller and its closure for the whole life of the stream.
      const abandoned = () => abort.abort();
      reply.raw.once("close", abandoned);
      const stream = await hub.open({
        userId: identity.kind === "user" ? identity.userId : identity.service,
        userName: identity.kind === "user" ? identity.userName : identity.service,
        channels,
        cursor,
        // The hub closes at its first sweep after this: ending no later than the token's exp.
        expiresAt: identity.expiresAt - TOKEN_EXPIRY_MARGIN_MS,
        signal: abort.signal,
        connect: () => {
          reply.raw.off("close", abandoned);
          return connect(request, reply);
        },
      });
      grantWatch?.watch(stream, identity, decisions);
    } catch (error) {
      // Answered by the error handler (a hub refusal mapped there, as for every route).
      const code = refusalCode(error);
      if (code !== null) metrics.connectionRefused(code);
      throw error;
    }
  });
}

function parseChannels(raw: string | string[], max: number): ChannelName[] {
  const names = Array.isArray(raw) ? raw : [raw];
  if (names.length === 0) throw appError(Errors.BAD_CHANNEL, "at least one channel is required");
  if (names.length > max) {
    throw appError(Errors.TOO_MANY_CHANNELS, `a stream carries at most ${max} channels`);
  }
  return names.map((name) => {
    const parsed = parseChannel(name);
    if (!parsed.ok) {
      throw appError(Errors.BAD_CHANNEL, `${parsed.reason}: "${printable(name)}"`);
    }
    return parsed.channel.name;
  });
}

function connect(request: FastifyRequest, reply: FastifyReply): Connection {
  // Headers hooks set (CORS, security headers) go out with the stream's own.
  const headers = { ...hookHeaders(reply), ...SSE_HEADERS };
  reply.hijack();
  const raw = request.raw as FastifyRequest["raw"] | Http2ServerRequest;
  if ("stream" in raw && raw.stream) return new Http2StreamConnection(raw.stream, headers);
  return new NodeHttpConnection(reply.raw as import("node:http").ServerResponse, headers);
}

function hookHeaders(reply: FastifyReply): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value === undefined || name === "connection" || name === "set-cookie") continue;
    headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return headers;
}
