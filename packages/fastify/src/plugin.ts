/**
 * realtime inside your own Fastify app:
 *
 *   await app.register(realtime, { authenticate: (request) => userOf(request) });
 *   await app.realtime.publish("channel:lobby", { type: "message.created", messageId });
 *
 * adds the events stream (`GET /api/events?channel=…`, where `@realtime/client` looks by
 * default), an HTTP publish path (`POST /api/publish`, for the users your `authorize` lets
 * publish) and the readiness of the broker (`GET /readyz`), all under the `prefix` you give, and decorates the app with `realtime` (the hub, the broker and a
 * `publish` for your own routes). Without a `broker` it runs in one process (`MemoryBroker`);
 * give it a `RedisBroker` (`@realtime/redis`) and every pod's subscribers get every event.
 *
 * The routes are answered in the plugin's own scope, so refusals are the catalogue's
 * `{ code, message }` (docs/errors.md) whatever error handler your app has; your app's hooks
 * (CORS, security headers, rate limits) run for them as for your own routes. The service in
 * `apps/service` serves its streams through this same plugin.
 */
import { type ChannelName, parseChannel, printable, validateEventInput } from "@realtime/protocol";
import {
  type Authorize,
  appError,
  type Broker,
  type ConnectionLedger,
  DEFAULT_IDEMPOTENCY_WINDOW_MS,
  DEFAULT_MAX_CHANNELS_PER_STREAM,
  DEFAULT_MAX_STREAMS_PER_USER,
  defaultAuthorize,
  type ErrorCode,
  Errors,
  type EventInput,
  errorBody,
  type HistoryStore,
  Hub,
  type HubOptions,
  hostHeaders,
  IDEMPOTENCY_HEADERS_SCHEMA,
  MemoryBroker,
  MemoryConnectionLedger,
  openRequestedStream,
  type PublishOptions,
  type PublishResult,
  REPLAYED_HEADER,
  type RealtimeUser,
  refusalCode,
  requestPublishOptions,
  requireAccess,
  type SseStream,
  streamConnection,
} from "@realtime/server";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { scopedErrorHandler } from "./error-handler.ts";
import { registerHistoryRoute } from "./history-route.ts";
import type { HostRouteOptions } from "./host-route-options.ts";
import { NO_QUERY } from "./no-query.ts";

export interface RealtimePluginOptions<U extends RealtimeUser = RealtimeUser, A = unknown> {
  /**
   * Who is asking, from your own session or token: `{ id, name?, expiresAt? }`. Null (or
   * undefined) is answered 401 `RT_ERR_UNAUTHORIZED`; a thrown `AppError` as it is.
   */
  authenticate(request: FastifyRequest): U | null | undefined | Promise<U | null | undefined>;
  /**
   * May `user` subscribe to (or publish on) `channels`? `false` is answered 403
   * `RT_ERR_CHANNEL_FORBIDDEN`. Default: their own `user:<id>` and every `channel:<id>` room;
   * no publishing over HTTP.
   */
  readonly authorize?: Authorize<U, FastifyRequest, A> | undefined;
  /**
   * The hub to serve, when your app runs one already; give its `broker` too, for readiness.
   * Then both stay yours: the plugin neither drains nor closes them.
   */
  readonly hub?: Hub | undefined;
  /**
   * The event path between pods. Default a `MemoryBroker`: one process, no Redis. Without
   * `hub`, the plugin closes it when the app closes.
   */
  readonly broker?: Broker | undefined;
  /** Options of the hub the plugin builds (heartbeats, limits, slow clients), without `hub`. */
  readonly hubOptions?: Omit<HubOptions, "broker"> | undefined;
  /**
   * Where the routes are, under the plugin's `prefix`; `false` leaves a route out. Default
   * `/api/events`, `/api/publish`, `/api/channels/:channel/messages` (history, where
   * `client.history()` reads it), `/readyz`.
   */
  readonly routes?:
    | {
        readonly events?: string | false | undefined;
        readonly publish?: string | false | undefined;
        readonly history?: string | false | undefined;
        readonly ready?: string | false | undefined;
      }
    | undefined;
  /** The plugin's routes prefix, e.g. `/realtime`. Default none. */
  readonly prefix?: string | undefined;
  /** Extra route options per route, for your app's hooks (rate limits, docs). */
  readonly routeOptions?:
    | {
        readonly events?: HostRouteOptions | undefined;
        readonly publish?: HostRouteOptions | undefined;
        readonly history?: HostRouteOptions | undefined;
        readonly ready?: HostRouteOptions | undefined;
      }
    | undefined;
  /** Most channels one stream may carry. Default 16. */
  readonly maxChannelsPerStream?: number | undefined;
  /**
   * Most streams one user holds open at once on this pod (429 `RT_ERR_TOO_MANY_CONNECTIONS`
   * past it), so one user cannot take every slot. Default 16; `false` when your app counts
   * them itself. For a count over every pod pass `ledger` (`RedisConnectionLedger`).
   */
  readonly maxStreamsPerUser?: number | false | undefined;
  /** Where streams are counted per user; default one in memory for `maxStreamsPerUser`. */
  readonly ledger?: ConnectionLedger | undefined;
  /** How long an `Idempotency-Key` on the publish path is remembered. Default 10 minutes. */
  readonly idempotencyWindowMs?: number | undefined;
  /** Who publishes, for scoping idempotency keys. Default `["user", user.id]`. */
  publisherOf?(user: U): readonly string[];
  /** When the plugin built the hub: how long `app.close()` spreads closing streams. Default 0. */
  readonly drainMs?: number | undefined;
  /** Called with each stream opened, and what `authorize` answered for it. */
  onStream?(
    stream: SseStream,
    context: { user: U; authorization: A; request: FastifyRequest },
  ): void;
  /** Called with the catalogue code of each refused stream open (for metrics). */
  onStreamRefused?(code: ErrorCode, request: FastifyRequest): void;
}

/** What the plugin decorates the app with (`app.realtime`). */
export interface Realtime {
  readonly hub: Hub;
  readonly broker: Broker;
  /** Publishes an event on a channel, to every subscriber on every pod. */
  publish(
    channel: ChannelName,
    event: EventInput,
    options?: PublishOptions,
  ): Promise<PublishResult>;
  /** Publishes on `user:<userId>`. */
  sendToUser(userId: string, event: EventInput, options?: PublishOptions): Promise<PublishResult>;
}

declare module "fastify" {
  interface FastifyInstance {
    realtime: Realtime;
  }
}

const EVENTS_QUERY = {
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

const PUBLISH_BODY = {
  type: "object",
  properties: {
    channel: { type: "string", minLength: 1, maxLength: 200 },
    event: { type: "object" },
  },
  required: ["channel", "event"],
  additionalProperties: false,
} as const;

/** A callback-style plugin (no promise handed back to `register`), as `RealtimePlugin` says. */
function realtimePlugin<U extends RealtimeUser, A>(
  app: FastifyInstance,
  options: RealtimePluginOptions<U, A>,
  done: (error?: Error) => void,
): void {
  install(app, options).then(() => done(), done);
}

async function install<U extends RealtimeUser, A>(
  app: FastifyInstance,
  options: RealtimePluginOptions<U, A>,
): Promise<void> {
  if (options.hub && !options.broker) {
    throw new TypeError("@realtime/fastify: give the hub's `broker` with `hub`, for readiness");
  }
  const broker = options.broker ?? new MemoryBroker();
  const ownsHub = options.hub === undefined;
  // Where resumes replay from, and the history route reads.
  const history = (ownsHub && options.hubOptions?.history) || historyOf(broker);
  const hub = options.hub ?? new Hub({ ...options.hubOptions, broker, history });
  const realtime: Realtime = {
    hub,
    broker,
    publish: (channel, event, publishOptions) => hub.publish(channel, event, publishOptions),
    sendToUser: (userId, event, publishOptions) => hub.sendToUser(userId, event, publishOptions),
  };
  app.decorate("realtime", realtime);
  if (ownsHub) {
    // Streams never go idle: closing the server alone would wait for every one of them.
    app.addHook("preClose", async () => {
      await hub.drain(options.drainMs ?? 0);
      await hub.close();
      await broker.close();
    });
  }
  await app.register(
    (scope, _options, done) => {
      // Realtime's errors from the catalogue; the host's own (its hooks, its authenticate) to
      // the handler it had here.
      scope.setErrorHandler(scopedErrorHandler(scope.errorHandler));
      registerRoutes(scope, { hub, broker, history }, options);
      done();
    },
    { prefix: options.prefix ?? "" },
  );
}

/** The broker's history, when it keeps one (both brokers do): resumes replay from it. */
function historyOf(broker: Broker): HistoryStore | undefined {
  return "read" in broker ? (broker as Broker & HistoryStore) : undefined;
}

function registerRoutes<U extends RealtimeUser, A>(
  app: FastifyInstance,
  parts: { hub: Hub; broker: Broker; history: HistoryStore | undefined },
  options: RealtimePluginOptions<U, A>,
): void {
  const { hub, broker, history } = parts;
  const authorize = options.authorize ?? (defaultAuthorize as Authorize<U, FastifyRequest, A>);
  const maxChannels = options.maxChannelsPerStream ?? DEFAULT_MAX_CHANNELS_PER_STREAM;
  const perUser = options.maxStreamsPerUser ?? DEFAULT_MAX_STREAMS_PER_USER;
  const ledger =
    options.ledger ?? (perUser === false ? null : new MemoryConnectionLedger({ max: perUser }));
  const paths = {
    events: "/api/events",
    publish: "/api/publish",
    history: "/api/channels/:channel/messages",
    ready: "/readyz",
    ...options.routes,
  };
  const extra = options.routeOptions ?? {};

  const authenticate = async (request: FastifyRequest): Promise<U> => {
    const user = await options.authenticate(request);
    if (!user) throw appError(Errors.UNAUTHORIZED);
    return user;
  };

  if (paths.events !== false) {
    // No HEAD twin: Fastify would run this handler for a HEAD too, opening a whole stream (a
    // slot, presence joins, a connection counted) whose body the client never reads.
    const route = {
      ...extra.events,
      schema: { querystring: EVENTS_QUERY },
      exposeHeadRoute: false,
      config: { ...extra.events?.config, hubAction: "open" },
    } as const;
    app.get(paths.events, route, async (request, reply) => {
      try {
        const query = request.query as { channel: string | string[]; lastEventId?: string };
        const { stream, user, authorization } = await openRequestedStream({
          hub,
          request,
          channels: query.channel,
          maxChannels,
          lastEventId: { header: request.headers["last-event-id"], query: query.lastEventId },
          response: reply.raw,
          authenticate: options.authenticate,
          authorize,
          ledger,
          // Fastify's clock for this request started when the router took it.
          receivedAt: performance.now() - reply.elapsedTime,
          connect: () => {
            // Headers hooks set (CORS, security headers) go out with the stream's own.
            const headers = hostHeaders(reply.getHeaders());
            reply.hijack();
            return streamConnection(request.raw, reply.raw, headers);
          },
        });
        options.onStream?.(stream, { user, authorization, request });
      } catch (error) {
        // Answered by the error handler (a hub refusal mapped there, as for every route).
        const code = refusalCode(error);
        if (code !== null) options.onStreamRefused?.(code, request);
        throw error;
      }
    });
  }

  if (paths.publish !== false) {
    const windowMs = options.idempotencyWindowMs ?? DEFAULT_IDEMPOTENCY_WINDOW_MS;
    const publisherOf = options.publisherOf ?? ((user: U) => ["user", user.id]);
    const route = {
      ...extra.publish,
      schema: { body: PUBLISH_BODY, headers: IDEMPOTENCY_HEADERS_SCHEMA, querystring: NO_QUERY },
      config: { ...extra.publish?.config, hubAction: "publish" },
    } as const;
    app.post(paths.publish, route, async (request, reply) => {
      const user = await authenticate(request);
      const body = request.body as { channel: string; event: unknown };
      const channel = parseChannel(body.channel);
      if (!channel.ok) {
        throw appError(Errors.BAD_CHANNEL, `${channel.reason}: "${printable(body.channel)}"`);
      }
      // The cheap checks of the input first (400), then access (403): an invalid request
      // costs no authorisation call (which may be the host's backend).
      const publishOptions = requestPublishOptions(publisherOf(user), request, windowMs);
      const problem = validateEventInput(body.event);
      if (problem) throw appError(Errors.BAD_REQUEST, problem);
      const channels = [channel.channel.name];
      await requireAccess(authorize, { user, channels, action: "publish", request });
      const position = await hub.publish(
        channel.channel.name,
        body.event as EventInput,
        publishOptions,
      );
      if (position.duplicate) reply.header(REPLAYED_HEADER, "true");
      return reply.code(202).send({ channel: channel.channel.name, offset: position.offset });
    });
  }

  if (paths.history !== false) {
    registerHistoryRoute(app, {
      path: paths.history,
      broker,
      history,
      authenticate,
      requireSubscriber: async (user, channel, request) => {
        await requireAccess(authorize, { user, channels: [channel], action: "subscribe", request });
      },
      routeOptions: extra.history,
    });
  }

  if (paths.ready !== false) {
    app.get(paths.ready, { ...extra.ready }, async (_request, reply) => {
      if (!hub.accepting) return reply.code(503).send(errorBody(Errors.SHUTTING_DOWN));
      if (!broker.ready()) {
        return reply.code(503).send({
          code: Errors.BROKER_UNAVAILABLE.code,
          message: "The broker is not confirmed live (connecting or re-subscribing)",
        });
      }
      return { status: "ready", connections: hub.connectionCount };
    });
  }
}

/**
 * The plugin's type. `app.register(realtime, { authenticate, authorize })` types both for a
 * plain {@link RealtimeUser} (the last signature: the one TypeScript infers `register`'s options
 * from); `realtime<MyUser, MyGrant>` (the generic one) types them for a user of your own.
 */
export interface RealtimePlugin {
  <U extends RealtimeUser, A = unknown>(
    app: FastifyInstance,
    options: RealtimePluginOptions<U, A>,
    done: (error?: Error) => void,
  ): void;
  (app: FastifyInstance, options: RealtimePluginOptions, done: (error?: Error) => void): void;
}

/**
 * The plugin: `app.register(realtime, options)`. Wrapped with `fastify-plugin` so that
 * `app.realtime` is visible to the app that registers it; its routes keep a scope of their own.
 */
export const realtime: RealtimePlugin = fp(realtimePlugin, {
  fastify: "5.x",
  name: "@realtime/fastify",
}) as RealtimePlugin;
