/**
 * The connection state machine behind the client: owns the one EventSource, the cursor, the
 * retry timer and the state. It re-opens the stream with the latest cursor when the channel set
 * changes or the stream is lost, closes the EventSource on every error and reconnects by
 * itself (full-jitter backoff), honours close codes and HTTP statuses, refreshes credentials,
 * and pauses while offline. What the stream carries goes out through two callbacks.
 *
 * A channel may be started from a given position (a history page's end) instead of from now:
 * that position is merged into the cursor when the stream next opens with the channel, so the
 * server replays exactly what came after it. A stream that carries the channel already
 * re-opens for that (`history_handoff`).
 */
import { type ChannelName, CloseCode, mergeCursor } from "@realtime/protocol";
import { type BackoffOptions, backoffDelay } from "./backoff.ts";
import { type ChannelPosition, positionIn } from "./channel-position.ts";
import { isolate } from "./channel-registry.ts";
import type {
  ConnectionSnapshot,
  ConnectionState,
  StateChange,
  StateReason,
} from "./connection-state.ts";
import type { Connectivity } from "./connectivity.ts";
import type { EventSourceFactory, EventSourceLike, TokenGetter } from "./event-source.ts";
import { decide, describeFailure, type StreamFailure } from "./reconnect-policy.ts";
import { probeRefusal } from "./refusal-probe.ts";
import { listenToStream } from "./stream-events.ts";
import { sameChannels, streamQuery } from "./stream-query.ts";
import type { Timers } from "./timers.ts";

type Details = Omit<StateChange, "from" | "to" | "reason">;

/** Everything the machine needs, resolved to concrete values by the client. */
export interface StreamConnectionOptions {
  readonly eventsUrl: string;
  readonly eventsPath: string;
  readonly factory: EventSourceFactory;
  readonly timers: Timers;
  readonly random: () => number;
  readonly connectivity: Connectivity;
  readonly getToken: TokenGetter | undefined;
  readonly onTokenExpired: (() => void | Promise<void>) | undefined;
  readonly withCredentials: boolean;
  readonly backoff: BackoffOptions | undefined;
  readonly cursor: string | null;
  /** An authenticated `fetch` against the service (to learn why a browser stream was refused). */
  readonly request: (path: string, init: RequestInit) => Promise<Response>;
  /** An application event's JSON (an object, not yet checked further) and its id. */
  readonly onMessage: (data: Record<string, unknown>, id: string | null) => void;
  /** A `reset` control event's JSON. */
  readonly onReset: (data: Record<string, unknown>) => void;
  /** The server no longer grants these channels of the stream (`close` 3503 naming them). */
  readonly onDenied: (channels: readonly ChannelName[]) => void;
}

export class StreamConnection {
  readonly #options: StreamConnectionOptions;
  readonly #stateListeners = new Set<(change: StateChange) => void>();
  #snapshot: ConnectionSnapshot = { state: "closed", change: null };
  #channels: readonly ChannelName[] = [];
  #source: EventSourceLike | null = null;
  #timer: { handle: unknown } | null = null;
  #cursor: string | null;
  /** Channels to start from a cursor of their own: merged into the cursor at the next open. */
  readonly #starts = new Map<ChannelName, string>();
  #attempt = 0;
  /** Why the machine will not connect by itself (`stop-channels`: until the channels change). */
  #stopped: "client" | "stop" | "stop-channels" | null = null;
  /** Offline: no stream and no timer until the network is back. */
  #paused = false;
  /** A credential refresh already happened since the last open: a second 401 is final. */
  #refreshed = false;
  /** Bumped whenever the stream is torn down, so late async work knows it is stale. */
  #generation = 0;
  #unwatchNetwork: (() => void) | null = null;

  constructor(options: StreamConnectionOptions) {
    this.#options = options;
    this.#cursor = options.cursor;
  }

  get state(): ConnectionState {
    return this.#snapshot.state;
  }

  get channels(): readonly ChannelName[] {
    return this.#channels;
  }

  get lastEventId(): string | null {
    this.#noteCursor(this.#source?.lastEventId);
    return this.#cursor;
  }

  getSnapshot(): ConnectionSnapshot {
    return this.#snapshot;
  }

  onStateChange(listener: (change: StateChange) => void): () => void {
    const wrapper = (change: StateChange) => listener(change);
    this.#stateListeners.add(wrapper);
    return () => this.#stateListeners.delete(wrapper);
  }

  /**
   * Where the stream goes on from on `channel`: its start, if one is set, else the cursor's
   * entry while the stream carries the channel. Null when not known (the channel is new to the
   * stream, or no id has said yet).
   */
  position(channel: ChannelName): ChannelPosition | null {
    const start = this.#starts.get(channel);
    if (start !== undefined) return positionIn(start, channel);
    return this.#channels.includes(channel) ? positionIn(this.lastEventId, channel) : null;
  }

  /**
   * Starts `channel` from `cursor` (a cursor with an entry for it, e.g. a history page's end)
   * at the next open: the server replays what came after it. Takes effect with the next
   * {@link setChannels}, which re-opens a stream that carries the channel already.
   */
  startFrom(channel: ChannelName, cursor: string): void {
    this.#starts.set(channel, cursor);
  }

  /** The channels wanted now; the client calls this once per tick in which they changed. */
  setChannels(wanted: readonly ChannelName[]): void {
    for (const channel of this.#starts.keys()) {
      if (!wanted.includes(channel)) this.#starts.delete(channel);
    }
    if (wanted.length === 0) {
      this.#channels = [];
      if (this.state === "closed") return;
      this.#teardown();
      this.#transition("closed", "unsubscribed");
      return;
    }
    const changed = !sameChannels(wanted, this.#channels);
    // A start for a channel the stream carries already: only a re-open can move it back there.
    const handoff = this.#channels.some((channel) => this.#starts.has(channel));
    this.#channels = wanted;
    if (this.#stopped) {
      // A refused channel set may be fixed by changing it; other stops wait for connect().
      if (!changed || this.#stopped !== "stop-channels") return;
      this.#stopped = null;
    }
    // Waiting out a backoff or the network: the next attempt takes the new set; opening now
    // would defeat the backoff against a server that is down.
    if (this.state === "reconnecting") return;
    if (!changed && !handoff && this.state !== "closed") return;
    const reason = changed ? "channels_changed" : "history_handoff";
    this.#start(this.state === "closed" ? "subscribed" : reason);
  }

  connect(wanted: readonly ChannelName[]): void {
    this.#stopped = null;
    if (this.state !== "closed") return;
    this.#channels = wanted;
    if (wanted.length > 0) this.#start("connect_called");
  }

  close(): void {
    this.#stopped = "client";
    this.#teardown();
    this.#transition("closed", "client_closed");
  }

  /**
   * Listens to the network from a connection attempt on (never at construction, which may run
   * during server-side rendering) until the machine is closed, which ignores the network.
   */
  #watchNetwork(): void {
    this.#unwatchNetwork ??= this.#options.connectivity.subscribe((up) => this.#network(up));
  }

  #start(reason: StateReason): void {
    this.#teardown();
    this.#watchNetwork();
    this.#attempt = 0;
    this.#refreshed = false;
    if (this.#pausedOffline()) return;
    this.#transition("connecting", reason, {}, () => void this.#open());
  }

  async #open(): Promise<void> {
    const { getToken, factory, withCredentials, eventsUrl, eventsPath } = this.#options;
    const generation = this.#generation;
    let token: string | null = null;
    if (getToken) {
      try {
        token = (await getToken()) ?? null;
      } catch (error) {
        if (generation === this.#generation) {
          this.#stop("stop", "token_refresh_failed", { message: describe(error) });
        }
        return;
      }
      if (generation !== this.#generation) return;
    }
    this.#applyStarts();
    const source = factory(
      `${eventsUrl}${eventsPath}?${streamQuery(this.#channels, this.#cursor)}`,
      {
        withCredentials,
        token,
      },
    );
    this.#source = source;
    listenToStream(source, {
      isLive: () => source === this.#source,
      onCursor: (id) => this.#noteCursor(id),
      onOpen: () => {
        this.#attempt = 0;
        this.#refreshed = false;
        this.#transition("open", "opened");
      },
      onMessage: (data, id) => this.#options.onMessage(data, id),
      onReset: (data) => this.#options.onReset(data),
      onFailure: (failure) => {
        this.#teardown();
        if (!this.#dropDenied(failure)) this.#fail(failure);
      },
      onRefused: () => {
        this.#teardown();
        void this.#probe();
      },
    });
  }

  /**
   * A `forbidden` close that names the stream's channels withdrawn: drops them, tells the client,
   * and re-opens at once with the rest (closed when none is left). False for any other failure.
   */
  #dropDenied(failure: StreamFailure): boolean {
    if (failure.kind !== "close" || failure.code !== CloseCode.Forbidden) return false;
    const denied = this.#channels.filter((c) => failure.channels?.includes(c));
    if (denied.length === 0) return false;
    const rest = this.#channels.filter((c) => !denied.includes(c));
    this.#channels = rest;
    const details = { closeCode: failure.code, message: failure.reason };
    this.#options.onDenied(denied);
    if (rest.length === 0) this.#stop("stop-channels", "channels_denied", details);
    else {
      this.#attempt = 0;
      this.#transition("connecting", "channels_denied", details, () => void this.#open());
    }
    return true;
  }

  /** Browsers do not say why an EventSource was refused: ask once more with fetch. */
  async #probe(): Promise<void> {
    const generation = this.#generation;
    const path = `${this.#options.eventsPath}?${streamQuery(this.#channels, this.#cursor)}`;
    const failure = await probeRefusal(this.#options.request, path);
    if (generation === this.#generation) this.#fail(failure);
  }

  #fail(failure: StreamFailure): void {
    const { reason, details } = describeFailure(failure);
    const decision = decide(failure);
    if (decision === "retry") this.#retry(reason, details);
    else if (decision === "refresh") void this.#refresh(failure, reason, details);
    else this.#stop(decision, reason, details);
  }

  #retry(reason: StateReason, details: Details): void {
    if (this.#pausedOffline(details)) return;
    const { random, backoff, timers } = this.#options;
    const delayMs = backoffDelay(this.#attempt++, random, backoff);
    // Armed before the transition is announced, so a listener that calls close() cancels it.
    const timer = {
      handle: timers.setTimeout(() => {
        if (this.#timer !== timer) return;
        this.#timer = null;
        void this.#open();
      }, delayMs),
    };
    this.#timer = timer;
    this.#transition("reconnecting", reason, { ...details, delayMs });
  }

  async #refresh(failure: StreamFailure, reason: StateReason, details: Details): Promise<void> {
    const { onTokenExpired, getToken } = this.#options;
    if (!onTokenExpired && !getToken) {
      // Nothing to renew credentials with: an expired stream may still come back (the app may
      // renew the cookie elsewhere); a refused one would only be refused again.
      if (failure.kind === "close") this.#retry(reason, details);
      else this.#stop("stop", reason, details);
      return;
    }
    if (this.#refreshed) return this.#stop("stop", reason, details);
    this.#refreshed = true;
    const generation = this.#generation;
    this.#transition("reconnecting", "token_expired", { ...details, delayMs: 0 });
    try {
      await onTokenExpired?.();
    } catch (error) {
      if (generation === this.#generation) {
        this.#stop("stop", "token_refresh_failed", { message: describe(error) });
      }
      return;
    }
    if (generation !== this.#generation || this.#pausedOffline()) return;
    await this.#open();
  }

  /** Offline: waits for the network instead of trying (true), or says go ahead (false). */
  #pausedOffline(details: Details = {}): boolean {
    if (this.#options.connectivity.isOnline()) return false;
    this.#paused = true;
    this.#transition("reconnecting", "offline", details);
    return true;
  }

  #stop(decision: "stop" | "stop-channels", reason: StateReason, details: Details = {}): void {
    this.#teardown();
    this.#stopped = decision;
    this.#transition("closed", reason, details);
  }

  #network(online: boolean): void {
    if (this.#stopped || this.state === "closed") return;
    if (!online) {
      if (this.#paused) return;
      this.#teardown();
      this.#paused = true;
      this.#transition("reconnecting", "offline");
      return;
    }
    if (!this.#paused) return;
    this.#paused = false;
    // A new network is a fresh start: no reason to wait out the old backoff.
    this.#attempt = 0;
    this.#transition("reconnecting", "online", { delayMs: 0 }, () => void this.#open());
  }

  /** Drops the stream and any pending retry; late callbacks of either are ignored. */
  #teardown(): void {
    this.#generation++;
    this.#paused = false;
    const source = this.#source;
    if (source) {
      // Where the EventSource exposes it, its last id includes id-only blocks, which no
      // event revealed: the stream's starting cursor when nothing arrived since.
      this.#noteCursor(source.lastEventId);
      this.#source = null;
      source.close();
    }
    if (this.#timer) {
      this.#options.timers.clearTimeout(this.#timer.handle);
      this.#timer = null;
    }
  }

  /**
   * Announces a transition, then runs `next` unless a listener changed course meanwhile (e.g.
   * called `close()`): listeners run synchronously and may re-enter the client.
   */
  #transition(
    to: ConnectionState,
    reason: StateReason,
    details: Details = {},
    next?: () => void,
  ): void {
    const generation = this.#generation;
    const from = this.#snapshot.state;
    if (to === "closed") {
      this.#unwatchNetwork?.();
      this.#unwatchNetwork = null;
    }
    // Retries, pauses and resumptions inside `reconnecting` are reported too: each has its
    // own reason and delay, which a UI shows ("offline", "retrying in 8 s").
    if (from !== to || to === "reconnecting") {
      const change: StateChange = { from, to, reason, ...details };
      this.#snapshot = { state: to, change };
      for (const listener of [...this.#stateListeners]) isolate(() => listener(change));
    }
    if (next && generation === this.#generation) next();
  }

  /** Merges the starts of the channels this stream opens with into the cursor it opens from. */
  #applyStarts(): void {
    for (const [channel, start] of this.#starts) {
      if (!this.#channels.includes(channel)) continue;
      this.#cursor = mergeCursor(this.#cursor, start);
      this.#starts.delete(channel);
    }
  }

  #noteCursor(id: unknown): void {
    // The server never sends an empty id; "" only means "nothing new" (a fresh EventSource).
    if (typeof id === "string" && id !== "") this.#cursor = id;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
