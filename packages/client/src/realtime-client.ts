/**
 * The framework-free client: subscriptions and typed dispatch in front of one
 * {@link StreamConnection}, the state machine that keeps a single EventSource carrying every
 * subscribed channel and resumes it from the latest cursor.
 */
import { type ChannelName, parseChannel, printable, type RealtimeEvent } from "@realtime/protocol";
import type { BackoffOptions } from "./backoff.ts";
import { type ChannelHandlers, ChannelRegistry } from "./channel-registry.ts";
import type { ConnectionSnapshot, ConnectionState, StateChange } from "./connection-state.ts";
import { type Connectivity, defaultConnectivity } from "./connectivity.ts";
import {
  type EventSourceFactory,
  type FetchLike,
  globalEventSource,
  type TokenGetter,
} from "./event-source.ts";
import { StreamConnection } from "./stream-connection.ts";
import { realTimers, type Timers } from "./timers.ts";

/** Application event types by `type`, for typed handlers. */
export type EventMap = Record<string, RealtimeEvent>;

/** Any event of an {@link EventMap}. */
export type EventOf<Events extends EventMap> = Events[keyof Events];

export interface RealtimeClientOptions {
  /**
   * Base URL of the service: `https://rt.example.com`, or `""` for the page's own origin
   * (browsers only). Required.
   */
  url: string;
  /** Path of the events route under {@link url}. Default `"/api/events"`. */
  eventsPath?: string;
  /**
   * Opens the stream. Default: the global `EventSource` (browsers; identity from the session
   * cookie). Node: `withBearerToken(EventSource)` with the `eventsource` package.
   */
  eventSource?: EventSourceFactory;
  /** Used by {@link RealtimeClient.request} and to read why a browser stream was refused. Default: global `fetch`. */
  fetch?: FetchLike;
  /** Timers for the reconnect delays. Default: the runtime's `setTimeout`/`clearTimeout`. */
  timers?: Timers;
  /** Jitter source, uniform in [0, 1). Default `Math.random`. */
  random?: () => number;
  /** Network up/down. Default: `navigator.onLine` and window events in browsers, always online elsewhere. */
  online?: Connectivity;
  /**
   * Returns the bearer token for the next connection or request (called before each).
   * Default: none (browsers authenticate with the HttpOnly cookie).
   */
  getToken?: TokenGetter;
  /**
   * Called when the server says the credentials expired (close code 3005, or HTTP 401 once per
   * open): renew them (e.g. refresh the session cookie); the client reconnects when it settles.
   * A rejection closes the client (`token_refresh_failed`). Default: none.
   */
  onTokenExpired?: () => void | Promise<void>;
  /** Send cookies to a cross-origin service (EventSource `withCredentials`, fetch `credentials: "include"`). Default false. */
  withCredentials?: boolean;
  /** Reconnect delays. Default: 1 s doubling to 30 s, full jitter. */
  backoff?: BackoffOptions;
  /** Cursor to resume from on the first connection (e.g. kept in `sessionStorage`). Default: none (start from now). */
  lastEventId?: string;
}

/** A subscription to one channel; the stream carries the channel while any subscription exists. */
export interface Subscription {
  readonly channel: ChannelName;
  /** Stops the handlers at once; the stream drops the channel (idempotent). */
  unsubscribe(): void;
}

export interface RealtimeClient<Events extends EventMap = EventMap> {
  /** The current state. */
  readonly state: ConnectionState;
  /** The channel set of the current (or next) stream. */
  readonly channels: readonly ChannelName[];
  /** The latest cursor seen; the next stream resumes from it. Null before any. */
  readonly lastEventId: string | null;
  /** The current state and the transition that led to it (stable between transitions). */
  getSnapshot(): ConnectionSnapshot;
  /** Calls `listener` on every transition; returns a function that stops the calls. */
  onStateChange(listener: (change: StateChange) => void): () => void;
  /**
   * Subscribes to `channel` (`user:<id>` or `channel:<id>`). Changes made in one tick re-open
   * the stream once, with the current cursor.
   * @throws {TypeError} when `channel` is not a valid channel name.
   */
  subscribe(channel: string, handlers?: ChannelHandlers<EventOf<Events>>): Subscription;
  /** Calls `handler` with every event of `type`, on any subscribed channel. */
  on<T extends keyof Events & string>(type: T, handler: (event: Events[T]) => void): () => void;
  /** Calls `handler` with every application event, on any subscribed channel. */
  onEvent(handler: (event: EventOf<Events>) => void): () => void;
  /** Calls `handler` when the server cannot replay what a channel missed: refetch its state. */
  onReset(handler: (channel: ChannelName, reason: string) => void): () => void;
  /** `fetch` against the service with the client's credentials (cookie or bearer token). */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Connects again after `close()` or a terminal refusal (e.g. after signing in again). */
  connect(): void;
  /** Closes the stream and stays closed until `connect()`; subscriptions are kept. */
  close(): void;
}

/** Creates a client. It connects once something subscribes. */
export function createRealtimeClient<Events extends EventMap = EventMap>(
  options: RealtimeClientOptions,
): RealtimeClient<Events> {
  return new Client<Events>(options);
}

class Client<Events extends EventMap> implements RealtimeClient<Events> {
  readonly #base: string;
  readonly #fetch: FetchLike;
  readonly #getToken: RealtimeClientOptions["getToken"];
  readonly #withCredentials: boolean;
  readonly #registry = new ChannelRegistry<EventOf<Events>>();
  /** Channels the server withdrew: kept out of the stream until `connect()` or resubscribed. */
  readonly #denied = new Set<ChannelName>();
  readonly #connection: StreamConnection;
  #syncQueued = false;

  constructor(options: RealtimeClientOptions) {
    this.#base = options.url.replace(/\/+$/, "");
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#getToken = options.getToken;
    this.#withCredentials = options.withCredentials ?? false;
    this.#connection = new StreamConnection({
      eventsUrl: this.#base,
      eventsPath: options.eventsPath ?? "/api/events",
      factory: options.eventSource ?? globalEventSource(),
      timers: options.timers ?? realTimers,
      random: options.random ?? Math.random,
      connectivity: options.online ?? defaultConnectivity(),
      getToken: options.getToken,
      onTokenExpired: options.onTokenExpired,
      withCredentials: this.#withCredentials,
      backoff: options.backoff,
      cursor: options.lastEventId || null,
      request: (path, init) => this.request(path, init),
      onMessage: (data) => {
        if (typeof data.type !== "string" || typeof data.channel !== "string") return;
        this.#registry.dispatchEvent(data as EventOf<Events>);
      },
      onReset: ({ channel, reason }) => {
        if (typeof channel !== "string" || !this.#registry.has(channel)) return;
        this.#registry.dispatchReset(channel, String(reason ?? "unknown"));
      },
      onDenied: (channels) => {
        for (const channel of channels) {
          this.#denied.add(channel);
          this.#registry.dispatchDenied(channel);
        }
      },
    });
  }

  get state(): ConnectionState {
    return this.#connection.state;
  }

  get channels(): readonly ChannelName[] {
    return this.#connection.channels;
  }

  get lastEventId(): string | null {
    return this.#connection.lastEventId;
  }

  getSnapshot(): ConnectionSnapshot {
    return this.#connection.getSnapshot();
  }

  onStateChange(listener: (change: StateChange) => void): () => void {
    return this.#connection.onStateChange(listener);
  }

  subscribe(channel: string, handlers: ChannelHandlers<EventOf<Events>> = {}): Subscription {
    const parsed = parseChannel(channel);
    if (!parsed.ok) {
      throw new TypeError(`invalid channel "${printable(String(channel))}": ${parsed.reason}`);
    }
    const remove = this.#registry.add(parsed.channel.name, handlers);
    this.#queueSync();
    let active = true;
    return {
      channel: parsed.channel.name,
      unsubscribe: () => {
        if (!active) return;
        active = false;
        remove();
        // A channel nobody subscribes to any more may be asked for afresh by a new subscription.
        if (!this.#registry.has(parsed.channel.name)) this.#denied.delete(parsed.channel.name);
        this.#queueSync();
      },
    };
  }

  on<T extends keyof Events & string>(type: T, handler: (event: Events[T]) => void): () => void {
    return this.#registry.on(type, (event) => handler(event as Events[T]));
  }

  onEvent(handler: (event: EventOf<Events>) => void): () => void {
    return this.#registry.onEvent(handler);
  }

  onReset(handler: (channel: ChannelName, reason: string) => void): () => void {
    return this.#registry.onReset(handler);
  }

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#getToken && !headers.has("authorization")) {
      const token = await this.#getToken();
      if (token) headers.set("authorization", `Bearer ${token}`);
    }
    const credentials = this.#withCredentials ? "include" : "same-origin";
    return this.#fetch(`${this.#base}${path}`, { credentials, ...init, headers });
  }

  connect(): void {
    this.#denied.clear();
    this.#connection.connect(this.#registry.channels());
  }

  close(): void {
    this.#connection.close();
  }

  /** The subscribed channels the server has not withdrawn. */
  #wanted(): ChannelName[] {
    return this.#registry.channels().filter((channel) => !this.#denied.has(channel));
  }

  /**
   * Coalesces every subscribe/unsubscribe of the current tick into one re-open: components
   * mounting together (or React StrictMode's mount-unmount-mount) cost one stream, not many.
   */
  #queueSync(): void {
    if (this.#syncQueued) return;
    this.#syncQueued = true;
    queueMicrotask(() => {
      this.#syncQueued = false;
      this.#connection.setChannels(this.#wanted());
    });
  }
}
