/**
 * A channel's recent events and then its live ones, as one list in a store with
 * `subscribe`/`getSnapshot` (what React's `useSyncExternalStore` wants): what a chat view shows
 * when a room opens. The first subscriber subscribes the channel from history
 * (`subscribe(…, { history })`), so the page and the live events join without gap or
 * duplicate; `loadOlder()` pages further back. A `reset` of the channel (what came between
 * could not be replayed) loads it afresh.
 */
import { type ChannelName, parseChannel, printable, type RealtimeEvent } from "@realtime/protocol";
import type { RealtimeClient, Subscription } from "./client-api.ts";
import type { HistoryEvent, HistoryPage } from "./history-page.ts";
import { StoreListeners } from "./store-listeners.ts";

export interface ChannelHistoryOptions {
  /** Events per page, 1–100. Default 50. */
  readonly limit?: number;
  /**
   * Keep only events of these types (e.g. `["chat"]`: presence events share a room's
   * channel). The first load then reads older pages until it has `limit` such events or
   * `maxPages` pages. Default: every type.
   */
  readonly types?: readonly string[];
  /** Pages the first load reads at most to find `limit` events of `types`. Default 3. */
  readonly maxPages?: number;
  /**
   * Most events kept: live ones push the oldest out (they can be loaded again with
   * `loadOlder()`). Default 500.
   */
  readonly maxEvents?: number;
}

export interface ChannelHistorySnapshot<E extends RealtimeEvent = RealtimeEvent> {
  readonly channel: ChannelName;
  /**
   * Oldest first: the history read, then every live event. `id` is the event's id on the
   * channel (as on a history page); empty only for a live event whose stream id said nothing.
   */
  readonly events: readonly HistoryEvent<E>[];
  /** The first page is on its way (live events are not shown before it). */
  readonly loading: boolean;
  /** An older page is on its way. */
  readonly loadingOlder: boolean;
  /**
   * Why the last read failed, else null. A first page that failed leaves the store live from
   * then on; an older one can be asked for again.
   */
  readonly error: unknown;
  /** History holds events older than `events[0]`: `loadOlder()` has something to read. */
  readonly hasOlder: boolean;
}

export interface ChannelHistoryStore<E extends RealtimeEvent = RealtimeEvent> {
  getSnapshot(): ChannelHistorySnapshot<E>;
  /** The first subscriber starts the store (reads history, subscribes); the last one stops it. */
  subscribe(listener: () => void): () => void;
  /** Reads the page before the oldest event held and puts it in front. No-op without one. */
  loadOlder(): Promise<void>;
}

/**
 * A store of `channel`'s recent and live events over `client`.
 * @throws {TypeError} when `channel` is not a valid channel name.
 */
export function createChannelHistory<E extends RealtimeEvent = RealtimeEvent>(
  client: RealtimeClient,
  channel: string,
  options: ChannelHistoryOptions = {},
): ChannelHistoryStore<E> {
  const parsed = parseChannel(channel);
  if (!parsed.ok) throw new TypeError(`invalid channel "${printable(channel)}": ${parsed.reason}`);
  return new ChannelHistory<E>(client, parsed.channel.name, options);
}

class ChannelHistory<E extends RealtimeEvent> implements ChannelHistoryStore<E> {
  readonly #client: RealtimeClient;
  readonly #channel: ChannelName;
  readonly #limit: number;
  readonly #types: ReadonlySet<string> | null;
  readonly #maxPages: number;
  readonly #maxEvents: number;
  readonly #listeners = new StoreListeners(
    () => this.#start(),
    () => this.#stop(),
  );
  #snapshot: ChannelHistorySnapshot<E>;
  /** `before` for the next older page; null when there is none. */
  #previous: string | null = null;
  #subscription: Subscription | null = null;
  /** Aborts the reads of the current run (a stop or a reload ends it). */
  #run: AbortController | null = null;

  constructor(client: RealtimeClient, channel: ChannelName, options: ChannelHistoryOptions) {
    this.#client = client;
    this.#channel = channel;
    this.#limit = options.limit ?? 50;
    this.#types = options.types ? new Set(options.types) : null;
    this.#maxPages = options.maxPages ?? 3;
    this.#maxEvents = options.maxEvents ?? 500;
    this.#snapshot = this.#initial();
  }

  getSnapshot = (): ChannelHistorySnapshot<E> => this.#snapshot;

  subscribe = (listener: () => void): (() => void) => this.#listeners.add(listener);

  loadOlder = async (): Promise<void> => {
    const run = this.#run;
    const { loading, loadingOlder } = this.#snapshot;
    // While the first load still fills, it is reading older pages itself.
    if (!run || this.#previous === null || loading || loadingOlder) return;
    this.#set({ loadingOlder: true });
    await this.#readOlder(run.signal);
    if (!run.signal.aborted) this.#set({ loadingOlder: false });
  };

  #initial(): ChannelHistorySnapshot<E> {
    return {
      channel: this.#channel,
      events: [],
      loading: true,
      loadingOlder: false,
      error: null,
      hasOlder: false,
    };
  }

  #start(): void {
    const run = new AbortController();
    this.#run = run;
    this.#subscription = this.#client.subscribe(
      this.#channel,
      {
        onHistory: (page) => void this.#firstPage(page as HistoryPage<E>, run.signal),
        onHistoryError: (error) => this.#set({ loading: false, error }),
        onEvent: (event, id) => {
          if (!this.#keeps(event)) return;
          let events = [...this.#snapshot.events, { id: id ?? "", event: event as E }];
          if (events.length > this.#maxEvents) {
            events = events.slice(events.length - this.#maxEvents);
            // What was pushed out can be read again: it is before the oldest kept.
            this.#previous = events[0]?.id || this.#previous;
          }
          this.#set({ events, hasOlder: this.#previous !== null });
        },
        // What came between could not be replayed: the list has a hole; read it afresh.
        onReset: () => {
          this.#stop();
          this.#set({}, true);
          this.#start();
        },
      },
      { history: this.#limit },
    );
  }

  #stop(): void {
    this.#run?.abort();
    this.#run = null;
    this.#subscription?.unsubscribe();
    this.#subscription = null;
    this.#previous = null;
    this.#snapshot = this.#initial();
  }

  async #firstPage(page: HistoryPage<E>, signal: AbortSignal): Promise<void> {
    this.#previous = page.previous;
    // Live events come only after this page, so the list is just the page for now.
    this.#set({ events: this.#kept(page.events), hasOlder: page.previous !== null });
    // Other event types crowded the page: read further back, a bounded number of pages.
    for (let pages = 1; this.#wantsMore() && pages < this.#maxPages; pages++) {
      if (!(await this.#readOlder(signal))) break;
    }
    if (!signal.aborted) this.#set({ loading: false });
  }

  #wantsMore(): boolean {
    return (
      this.#types !== null && this.#previous !== null && this.#snapshot.events.length < this.#limit
    );
  }

  /** Puts the page before `#previous` in front; false when it failed or the run ended. */
  async #readOlder(signal: AbortSignal): Promise<boolean> {
    const before = this.#previous;
    if (before === null) return false;
    let page: HistoryPage<E>;
    try {
      page = (await this.#client.history(this.#channel, {
        limit: this.#limit,
        before,
        signal,
      })) as HistoryPage<E>;
    } catch (error) {
      if (!signal.aborted) this.#set({ error });
      return false;
    }
    if (signal.aborted) return false;
    // `reset`: the history `before` belonged to is gone; nothing older can be read.
    this.#previous = page.reset ? null : page.previous;
    const events = [...this.#kept(page.events), ...this.#snapshot.events];
    this.#set({ events, hasOlder: this.#previous !== null, error: null });
    return true;
  }

  #keeps(event: RealtimeEvent): boolean {
    return this.#types === null || this.#types.has(event.type);
  }

  #kept(events: readonly HistoryEvent<E>[]): HistoryEvent<E>[] {
    return events.filter(({ event }) => this.#keeps(event));
  }

  #set(patch: Partial<ChannelHistorySnapshot<E>>, force = false): void {
    const next = { ...this.#snapshot, ...patch };
    const same = Object.keys(patch).every(
      (key) =>
        next[key as keyof ChannelHistorySnapshot<E>] ===
        this.#snapshot[key as keyof ChannelHistorySnapshot<E>],
    );
    if (same && !force) return;
    this.#snapshot = next;
    this.#listeners.notify();
  }
}
