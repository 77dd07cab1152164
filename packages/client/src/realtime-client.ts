/**
 * The framework-free client: subscriptions and typed dispatch in front of one
 * {@link StreamConnection}, the state machine that keeps a single EventSource carrying every
 * subscribed channel and resumes it from the latest cursor.
 */
import { type ChannelName, parseChannel, printable } from "@realtime/protocol";
import { channelCursor, positionIn } from "./channel-position.ts";
import { type ChannelHandlers, ChannelRegistry, isolate } from "./channel-registry.ts";
import type {
  EventMap,
  EventOf,
  HistoryHandlers,
  RealtimeClient,
  RealtimeClientOptions,
  SubscribeOptions,
  Subscription,
} from "./client-api.ts";
import type { ConnectionSnapshot, ConnectionState, StateChange } from "./connection-state.ts";
import { defaultConnectivity } from "./connectivity.ts";
import { type EventSourceFactory, type FetchLike, globalEventSource } from "./event-source.ts";
import { type HistoryOptions, type HistoryPage, readHistoryPage } from "./history-page.ts";
import { StreamConnection } from "./stream-connection.ts";
import { realTimers, type Timers } from "./timers.ts";

/**
 * Longest a stream (re-)open waits for history reads in flight: channels subscribed together
 * with rooms that start from history open with them, as one stream, unless a read is slower.
 */
const HISTORY_HOLD_MS = 1000;

/**
 * Creates a client. It connects once something subscribes. Creating it touches no browser global
 * and starts nothing (no timer, no listener), so it may be created at module scope of code that
 * also runs on a server (SSR); the `EventSource` is looked up at the first connection.
 */
export function createRealtimeClient<Events extends EventMap = EventMap>(
  options: RealtimeClientOptions,
): RealtimeClient<Events> {
  return new Client<Events>(options);
}

class Client<Events extends EventMap> implements RealtimeClient<Events> {
  readonly #base: string;
  readonly #fetch: FetchLike;
  readonly #getToken: RealtimeClientOptions["getToken"];
  readonly #onTokenExpired: RealtimeClientOptions["onTokenExpired"];
  readonly #withCredentials: boolean;
  /** The latest `onTokenExpired` call (in flight while {@link #renewing}), as it settled. */
  #renewal: Promise<void> = Promise.resolve();
  #renewing = false;
  /** `onTokenExpired` calls started so far. */
  #renewals = 0;
  /** The `eventSource` option, else the global `EventSource` once the first connection asks. */
  #eventSource: EventSourceFactory | undefined;
  readonly #registry = new ChannelRegistry<EventOf<Events>>();
  /** Channels the server withdrew: kept out of the stream until `connect()` or resubscribed. */
  readonly #denied = new Set<ChannelName>();
  readonly #connection: StreamConnection;
  readonly #timers: Timers;
  #syncQueued = false;
  /** Subscriptions waiting for their history page: the stream waits for them (bounded). */
  #reading = 0;
  /** A sync is owed once the reads are in (or the hold ends). */
  #held = false;
  #holdTimer: { handle: unknown } | null = null;

  constructor(options: RealtimeClientOptions) {
    this.#base = options.url.replace(/\/+$/, "");
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#getToken = options.getToken;
    this.#onTokenExpired = options.onTokenExpired;
    this.#withCredentials = options.withCredentials ?? false;
    this.#timers = options.timers ?? realTimers;
    this.#eventSource = options.eventSource;
    this.#connection = new StreamConnection({
      eventsUrl: this.#base,
      eventsPath: options.eventsPath ?? "/api/events",
      factory: (url, init) => this.#transport()(url, init),
      timers: this.#timers,
      random: options.random ?? Math.random,
      connectivity: options.online ?? defaultConnectivity(),
      getToken: options.getToken,
      // The stream's renewals and the requests' are one: an expiry both meet renews once.
      onTokenExpired: options.onTokenExpired && (() => this.#renew(null)),
      withCredentials: this.#withCredentials,
      backoff: options.backoff,
      cursor: options.lastEventId || null,
      // The probe reports a 401 as it is: the stream renews and reopens by itself (`#refresh`).
      request: (path, init) => this.#send(path, init),
      onMessage: (data, id) => {
        if (typeof data.type !== "string" || typeof data.channel !== "string") return;
        this.#registry.dispatchEvent(data as EventOf<Events>, id);
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

  subscribe(
    channel: string,
    handlers: ChannelHandlers<EventOf<Events>> & HistoryHandlers<EventOf<Events>> = {},
    options: SubscribeOptions = {},
  ): Subscription {
    const name = channelName(channel);
    this.#transport();
    const { from, history } = options;
    if (from !== undefined && history !== undefined) {
      throw new TypeError("subscribe: `from` or `history`, not both");
    }
    if (from !== undefined && positionIn(from, name) === null) {
      throw new TypeError(`subscribe: \`from\` is not a cursor of ${name}`);
    }
    if (history !== undefined && (!Number.isInteger(history) || history < 1)) {
      throw new RangeError(`subscribe: \`history\` must be an integer ≥ 1, got ${history}`);
    }
    let remove: (() => void) | null = null;
    const abort = new AbortController();
    const attach = (start: string | null) => {
      remove = this.#attach(name, handlers, start);
    };
    let reading = history !== undefined;
    if (reading) this.#reading++;
    const settle = () => {
      if (!reading) return;
      reading = false;
      this.#reading--;
      if (this.#reading === 0 && this.#held) this.#queueSync();
    };
    if (history === undefined) attach(from ?? null);
    else void this.#attachAfterHistory(name, history, handlers, abort.signal, settle, attach);
    return {
      channel: name,
      unsubscribe: () => {
        if (abort.signal.aborted) return;
        abort.abort();
        settle();
        if (!remove) return;
        remove();
        // A channel nobody subscribes to any more may be asked for afresh by a new subscription.
        if (!this.#registry.has(name)) this.#denied.delete(name);
        this.#queueSync();
      },
    };
  }

  async history(
    channel: string,
    options: HistoryOptions = {},
  ): Promise<HistoryPage<EventOf<Events>>> {
    return readHistoryPage((path, init) => this.request(path, init), channelName(channel), options);
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
    const renewals = this.#renewals;
    const response = await this.#send(path, init);
    if (!(await this.#mayRetry(response, init))) return response;
    // Only the clone was read; the retry's response replaces this one.
    void response.body?.cancel().catch(() => {});
    if (this.#onTokenExpired) await this.#renew(renewals);
    return this.#send(path, init);
  }

  /** One `fetch` with the client's credentials: a bearer token unless `init` has its own. */
  async #send(path: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#getToken && !headers.has("authorization")) {
      const token = await this.#getToken();
      if (token) headers.set("authorization", `Bearer ${token}`);
    }
    const credentials = this.#withCredentials ? "include" : "same-origin";
    return this.#fetch(`${this.#base}${path}`, { credentials, ...init, headers });
  }

  /**
   * Whether `request()` renews and sends again: the service said the credentials expired, the
   * client supplied them (it has `getToken` or `onTokenExpired`, and the caller set no
   * `authorization` of its own), the body can be sent a second time and nobody aborted.
   */
  async #mayRetry(response: Response, init: RequestInit): Promise<boolean> {
    if (response.status !== 401) return false;
    if (!this.#getToken && !this.#onTokenExpired) return false;
    if (new Headers(init.headers).has("authorization")) return false;
    if (!replayable(init.body) || init.signal?.aborted) return false;
    const body = (await response
      .clone()
      .json()
      .catch(() => null)) as { code?: unknown } | null;
    return body?.code === TOKEN_EXPIRED && !init.signal?.aborted;
  }

  /**
   * Renews the credentials with `onTokenExpired`: one call for every expiry met meanwhile.
   * `seen` is how many calls had started when the caller read its credentials: if one started
   * since, the caller shares that one's outcome (resolved: read them again; rejected: its
   * error) instead of calling again. Null (the stream): share only a call in flight.
   */
  #renew(seen: number | null): Promise<void> {
    if (this.#renewing || (seen !== null && seen !== this.#renewals)) return this.#renewal;
    this.#renewals++;
    this.#renewing = true;
    let call: Promise<void>;
    try {
      // Called at once, as the stream always did; a throw becomes the call's rejection.
      call = Promise.resolve(this.#onTokenExpired?.());
    } catch (error) {
      call = Promise.reject(error);
    }
    this.#renewal = call.finally(() => {
      this.#renewing = false;
    });
    return this.#renewal;
  }

  connect(): void {
    this.#transport();
    this.#denied.clear();
    this.#connection.connect(this.#registry.channels());
  }

  close(): void {
    this.#connection.close();
  }

  /**
   * Adds a subscription to the registry, starting after `start` (a cursor of the channel) when
   * given. The stream must then go on from `start` or from before it: from before, the
   * subscription skips what it already has; from after it, or from a place not known yet (the
   * channel is new to the stream), the stream is told to start the channel at `start`.
   */
  #attach(
    channel: ChannelName,
    handlers: ChannelHandlers<EventOf<Events>>,
    start: string | null,
  ): () => void {
    // Without a start, a subscription joining others on a channel begins where they are.
    const known = this.#registry.has(channel) ? this.#connection.position(channel) : null;
    let seen = known;
    if (start !== null) {
      seen = positionIn(start, channel);
      if (
        seen &&
        (known === null || known.epochTag !== seen.epochTag || known.offset > seen.offset)
      ) {
        // This channel's entry only: whatever else the cursor holds is not this subscription's.
        this.#connection.startFrom(channel, channelCursor(channel, seen));
      }
    }
    const remove = this.#registry.add(channel, handlers, seen);
    this.#queueSync();
    return remove;
  }

  /** Reads the channel's last `limit` events, hands them over, then attaches after them. */
  async #attachAfterHistory(
    channel: ChannelName,
    limit: number,
    handlers: HistoryHandlers<EventOf<Events>>,
    signal: AbortSignal,
    settle: () => void,
    attach: (start: string | null) => void,
  ): Promise<void> {
    // A tick later: a subscription undone in the same tick (React StrictMode mounts, unmounts
    // and mounts again) asks the service for nothing.
    await Promise.resolve();
    if (signal.aborted) return;
    let page: HistoryPage<EventOf<Events>>;
    try {
      page = await this.history(channel, { limit, signal });
    } catch (error) {
      if (signal.aborted) return;
      settle();
      isolate(() => handlers.onHistoryError?.(error));
      if (!signal.aborted) attach(null);
      return;
    }
    if (signal.aborted) return;
    settle();
    isolate(() => handlers.onHistory?.(page));
    if (!signal.aborted) attach(page.cursor);
  }

  /**
   * The `EventSource` factory, resolved on first use: `subscribe()` and `connect()` ask for it
   * up front, so a runtime without one fails there, synchronously, with a clear TypeError (not
   * at construction, which may run during server-side rendering; not later, inside a tick).
   * @throws {TypeError} when no `eventSource` was passed and there is no global `EventSource`.
   */
  #transport(): EventSourceFactory {
    this.#eventSource ??= globalEventSource();
    return this.#eventSource;
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
      this.#sync();
    });
  }

  /**
   * Applies the channel set, unless history reads are in flight: then it waits for them (at
   * most {@link HISTORY_HOLD_MS}), so a page that opens several rooms from history and other
   * channels besides opens one stream once their pages are in, not one per page.
   */
  #sync(): void {
    if (this.#reading > 0) {
      this.#held = true;
      if (this.#holdTimer === null) {
        const timer: { handle: unknown } = { handle: null };
        this.#holdTimer = timer;
        timer.handle = this.#timers.setTimeout(() => {
          if (this.#holdTimer === timer) this.#flush();
        }, HISTORY_HOLD_MS);
      }
      return;
    }
    this.#flush();
  }

  #flush(): void {
    this.#held = false;
    if (this.#holdTimer) this.#timers.clearTimeout(this.#holdTimer.handle);
    this.#holdTimer = null;
    this.#connection.setChannels(this.#wanted());
  }
}

/** The `code` of a 401 for credentials that were good but expired (docs/errors.md). */
const TOKEN_EXPIRED = "RT_ERR_TOKEN_EXPIRED";

/**
 * Whether `fetch` can send `body` again: what it reads afresh on every call. A stream (or
 * anything else a runtime accepts) is spent by the first send.
 */
function replayable(body: RequestInit["body"]): boolean {
  if (body === undefined || body === null || typeof body === "string") return true;
  if (body instanceof URLSearchParams || body instanceof ArrayBuffer) return true;
  if (ArrayBuffer.isView(body)) return true;
  if (typeof Blob === "function" && body instanceof Blob) return true;
  return typeof FormData === "function" && body instanceof FormData;
}

/** @throws {TypeError} when `channel` is not a valid channel name. */
function channelName(channel: string): ChannelName {
  const parsed = parseChannel(channel);
  if (!parsed.ok) {
    throw new TypeError(`invalid channel "${printable(String(channel))}": ${parsed.reason}`);
  }
  return parsed.channel.name;
}
