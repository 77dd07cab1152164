/**
 * A scriptable EventSource for tests: records every stream the client opens and lets the test
 * play the server (open, events, id-only blocks, `reset`, `close`, refusals, drops).
 */
import type { EventSourceFactory, EventSourceInit, EventSourceLike } from "../event-source.ts";

export interface FakeEventSourceOptions {
  /**
   * Expose `lastEventId` on the instance, as some implementations do. Default false: like
   * browsers and the `eventsource` package, the last id is then only visible on the
   * `lastEventId` of dispatched events.
   */
  readonly exposeLastEventId?: boolean;
}

export class FakeEventSource implements EventSourceLike {
  readonly url: string;
  readonly init: EventSourceInit;
  readyState = 0;
  readonly #listeners = new Map<string, Set<(event: Event) => void>>();
  readonly #expose: boolean;
  /** The stream's last event id, as the spec keeps it (set by id-only blocks too). */
  #lastId = "";

  constructor(url: string, init: EventSourceInit, options: FakeEventSourceOptions = {}) {
    this.url = url;
    this.init = init;
    this.#expose = options.exposeLastEventId ?? false;
  }

  get lastEventId(): string | undefined {
    return this.#expose ? this.#lastId : undefined;
  }

  /** The `channel` query parameters, in order. */
  get channels(): string[] {
    return new URL(this.url, "http://fake").searchParams.getAll("channel");
  }

  /** The `lastEventId` query parameter, or null. */
  get cursor(): string | null {
    return new URL(this.url, "http://fake").searchParams.get("lastEventId");
  }

  get closed(): boolean {
    return this.readyState === 2;
  }

  addEventListener(type: string, listener: (event: Event) => void): void {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener);
  }

  close(): void {
    this.readyState = 2;
  }

  /** The server accepted the stream. */
  open(): void {
    this.readyState = 1;
    this.#dispatch(new Event("open"));
  }

  /** An application event (no `event:` field). */
  message(data: Record<string, unknown>, id?: string): void {
    if (id !== undefined) this.#lastId = id;
    this.#dispatch(
      new MessageEvent("message", { data: JSON.stringify(data), lastEventId: this.#lastId }),
    );
  }

  /** The server's first event: `ready`, whose id is the stream's starting cursor. */
  ready(id: string, channels: readonly string[] = []): void {
    this.#lastId = id;
    const data = JSON.stringify({ type: "ready", channels, timestamp: "t" });
    this.#dispatch(new MessageEvent("ready", { data, lastEventId: id }));
  }

  /** An id-only block: updates the last id, dispatches nothing. */
  idOnly(id: string): void {
    this.#lastId = id;
  }

  /** A `reset` control event. */
  reset(channel: string, reason: string): void {
    const data = JSON.stringify({ type: "reset", channel, reason, timestamp: "t" });
    this.#dispatch(new MessageEvent("reset", { data, lastEventId: this.#lastId }));
  }

  /** A `close` control event (the server then ends the response). */
  serverClose(code: number, reason = "test", channels?: readonly string[]): void {
    const data = JSON.stringify({ type: "close", code, reason, channels, timestamp: "t" });
    this.#dispatch(new MessageEvent("close", { data, lastEventId: this.#lastId }));
  }

  /** The connection dropped: a spec EventSource would reconnect by itself (CONNECTING). */
  drop(): void {
    this.readyState = 0;
    this.#dispatch(new Event("error"));
  }

  /**
   * The server refused the stream. `status` set: like the `eventsource` package, which puts
   * it on the error event. Omitted: like browsers, which only say the EventSource is CLOSED.
   */
  refuse(status?: number): void {
    this.readyState = 2;
    const event = new Event("error");
    if (status !== undefined) Object.assign(event, { code: status, message: `HTTP ${status}` });
    this.#dispatch(event);
  }

  #dispatch(event: Event): void {
    for (const listener of [...(this.#listeners.get(event.type) ?? [])]) listener(event);
  }
}

/** Every stream a client opened, for one test. */
export class FakeEventSources {
  readonly all: FakeEventSource[] = [];
  readonly #options: FakeEventSourceOptions;

  constructor(options: FakeEventSourceOptions = {}) {
    this.#options = options;
  }

  readonly factory: EventSourceFactory = (url, init) => {
    const source = new FakeEventSource(url, init, this.#options);
    this.all.push(source);
    return source;
  };

  /** The newest stream. */
  get last(): FakeEventSource {
    const source = this.all.at(-1);
    if (!source) throw new Error("no EventSource was opened");
    return source;
  }

  /** Streams not closed by the client. */
  get openCount(): number {
    return this.all.filter((source) => !source.closed).length;
  }
}
