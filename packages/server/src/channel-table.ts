/**
 * The channels an in-process broker holds: each one's epoch, top offset, retained history and
 * subscribers — bounded in count and in history bytes, and released when nobody uses them.
 *
 * Pure state, no timers and no I/O: the owner ({@link MemoryBus}) calls {@link sweep} on its
 * timer. Policy:
 * - History: at most `retention.size` events per channel, none older than `retention.ttlMs`,
 *   and at most `maxHistoryBytes` over every channel — past that, the oldest events of the
 *   channels published least recently go first (resuming clients that needed them get a
 *   `reset`, as for any trimmed history).
 * - A channel without subscribers is released `idleTtlMs` after its last use (publish,
 *   position read, last subscriber leaving), with any history it still has (by default history
 *   is gone by then: it lives 5 minutes, the channel 10); it comes back in a new epoch, so an
 *   old cursor is reset, never matched against another history.
 * - At most `maxChannels`: a new channel past it releases the least recently used channel that
 *   has no subscriber; when every channel has one, the new one is refused
 *   ({@link ChannelCapacityError}).
 */
import type { ChannelName } from "@realtime/protocol";
import { type BrokerMessage, ChannelCapacityError } from "./broker.ts";
import { DEFAULT_RETENTION, type HistoryPage, type HistoryRetention } from "./history-store.ts";

/** How long an unused channel's state is kept by default: 10 minutes. */
export const DEFAULT_CHANNEL_IDLE_TTL_MS = 600_000;
/** Channels held at most by default. */
export const DEFAULT_MAX_CHANNELS = 100_000;
/** History bytes held at most over every channel by default: 64 MiB. */
export const DEFAULT_MAX_HISTORY_BYTES = 64 * 1024 * 1024;

/**
 * What one retained event costs besides its JSON, in bytes: its two objects, its slot and the
 * string's header (measured with `--expose-gc` on Node 24: ~180 bytes); and what a channel's
 * history array costs while it holds anything (~190 bytes). So the history cap bounds the heap
 * history really takes, not just its JSON.
 */
const EVENT_OVERHEAD_BYTES = 192;
const HISTORY_ARRAY_BYTES = 192;

/** Outside Latin-1: a string V8 keeps at two bytes a character. */
const TWO_BYTE = /[\u0100-\uffff]/;

/** What a string takes on the heap, as near as its length tells (its header is in the overhead). */
function heapBytes(text: string): number {
  return TWO_BYTE.test(text) ? text.length * 2 : text.length;
}

/** The history of every channel that retains nothing: one array, never written to. */
const NO_HISTORY: Retained[] = [];
/** A channel's position in the usage order is refreshed at most this often, in ms. */
const REORDER_MS = 1_000;

export interface ChannelTableOptions {
  retention?: Partial<HistoryRetention> | undefined;
  /** Default {@link DEFAULT_CHANNEL_IDLE_TTL_MS}. */
  idleTtlMs?: number | undefined;
  /** Default {@link DEFAULT_MAX_CHANNELS}. */
  maxChannels?: number | undefined;
  /** Default {@link DEFAULT_MAX_HISTORY_BYTES}. */
  maxHistoryBytes?: number | undefined;
  now: () => number;
}

interface Retained {
  readonly message: BrokerMessage;
  readonly at: number;
  readonly bytes: number;
}

/** One channel's state. `S` is whatever the owner keeps as a subscriber. */
export interface ChannelRecord<S> {
  readonly name: ChannelName;
  readonly epoch: string;
  offset: number;
  /** Retained events are `history[head…]`, oldest first; the front is cut lazily. */
  history: Retained[];
  head: number;
  /** Bytes of the retained events (JSON plus overhead) and of their array. */
  bytes: number;
  /** Last publish, read or leave (ms). */
  usedAt: number;
  /** When the record last moved to the back of the usage order of unsubscribed channels (ms). */
  movedAt: number;
  /** Null while there are none (most channels an attacker names never get one). */
  subscribers: Set<S> | null;
}

/** What the table holds now, for metrics and tests. */
export interface ChannelTableStats {
  readonly channels: number;
  readonly historyEvents: number;
  readonly historyBytes: number;
}

export class ChannelTable<S> {
  readonly #retention: HistoryRetention;
  readonly #idleTtlMs: number;
  readonly #maxChannels: number;
  readonly #maxHistoryBytes: number;
  readonly #now: () => number;
  readonly #epochBase: string;
  #created = 0;
  /** Every channel held, by name. */
  readonly #channels = new Map<ChannelName, ChannelRecord<S>>();
  /**
   * The channels without subscribers — the only ones that may be released — least recently
   * used first (to within {@link REORDER_MS}): the front is what a new channel past the cap
   * releases, and where the sweep looks.
   */
  readonly #unsubscribed = new Set<ChannelRecord<S>>();
  /** Channels with retained history, least recently published first. */
  readonly #retaining = new Set<ChannelRecord<S>>();
  #historyBytes = 0;
  #historyEvents = 0;

  constructor(epochBase: string, options: ChannelTableOptions) {
    this.#epochBase = epochBase;
    this.#retention = { ...DEFAULT_RETENTION, ...options.retention };
    this.#idleTtlMs = options.idleTtlMs ?? DEFAULT_CHANNEL_IDLE_TTL_MS;
    this.#maxChannels = Math.max(1, options.maxChannels ?? DEFAULT_MAX_CHANNELS);
    this.#maxHistoryBytes = options.maxHistoryBytes ?? DEFAULT_MAX_HISTORY_BYTES;
    this.#now = options.now;
  }

  get stats(): ChannelTableStats {
    return {
      channels: this.#channels.size,
      historyEvents: this.#historyEvents,
      historyBytes: this.#historyBytes,
    };
  }

  /** Whether state is held for `channel` (without counting as a use). */
  has(channel: ChannelName): boolean {
    return this.#channels.has(channel);
  }

  /** The channel's record if it has one, without counting as a use. */
  peek(channel: ChannelName): ChannelRecord<S> | undefined {
    return this.#channels.get(channel);
  }

  /**
   * The channel's record, created in a new epoch when it has none; counts as a use.
   * @throws {ChannelCapacityError} when a new channel would pass the cap and none can go.
   */
  use(channel: ChannelName): ChannelRecord<S> {
    const now = this.#now();
    let record = this.#channels.get(channel);
    if (record) {
      // Compared with the last move, not the last use: a channel used more often than this
      // must still move, or it would sit at the front and stop every sweep there.
      if (record.subscribers === null && now - record.movedAt >= REORDER_MS) {
        this.#unsubscribed.delete(record);
        this.#unsubscribed.add(record);
        record.movedAt = now;
      }
      record.usedAt = now;
      return record;
    }
    if (this.#channels.size >= this.#maxChannels) this.#evictOne();
    record = {
      name: channel,
      // Per channel and per incarnation: a released channel never comes back in its old epoch.
      epoch: `${this.#epochBase}${(++this.#created).toString(36)}`,
      offset: 0,
      history: NO_HISTORY,
      head: 0,
      bytes: 0,
      usedAt: now,
      movedAt: now,
      subscribers: null,
    };
    this.#channels.set(channel, record);
    this.#unsubscribed.add(record);
    return record;
  }

  /** Appends the next event of `record` (its offset already assigned) to its history. */
  retain(record: ChannelRecord<S>, message: BrokerMessage): void {
    const bytes = heapBytes(message.data) + EVENT_OVERHEAD_BYTES;
    if (record.history === NO_HISTORY) {
      record.history = [];
      record.bytes += HISTORY_ARRAY_BYTES;
      this.#historyBytes += HISTORY_ARRAY_BYTES;
    }
    record.history.push({ message, at: this.#now(), bytes });
    record.bytes += bytes;
    this.#historyBytes += bytes;
    this.#historyEvents++;
    // Most recently published last: the bytes cap takes from the front.
    this.#retaining.delete(record);
    this.#retaining.add(record);
    const over = record.history.length - record.head - this.#retention.size;
    if (over > 0) this.#dropFront(record, over);
    if (this.#historyBytes > this.#maxHistoryBytes) this.#shedBytes();
  }

  /** Retained events of `channel` after `after`, at most `limit`; not a use. */
  read(channel: ChannelName, after: number, limit: number): HistoryPage {
    const record = this.#channels.get(channel);
    if (!record) return { epoch: "", top: 0, messages: [] };
    this.#expire(record, this.#now() - this.#retention.ttlMs);
    const { history, head } = record;
    const live = history.length - head;
    if (live === 0) return { epoch: record.epoch, top: record.offset, messages: [] };
    // Offsets are contiguous, so the start is an index computation, not a scan.
    const first = (history[head] as Retained).message.offset;
    const start = head + Math.max(0, after + 1 - first);
    const end = Math.min(history.length, start + Math.max(0, limit));
    const messages: BrokerMessage[] = [];
    for (let i = start; i < end; i++) messages.push((history[i] as Retained).message);
    return { epoch: record.epoch, top: record.offset, messages };
  }

  /**
   * A subscriber joins the channel (created if need be; a use).
   * @throws {ChannelCapacityError} when a new channel would pass the cap and none can go.
   */
  join(channel: ChannelName, subscriber: S): ChannelRecord<S> {
    const record = this.use(channel);
    if (record.subscribers === null) {
      record.subscribers = new Set();
      this.#unsubscribed.delete(record);
    }
    record.subscribers.add(subscriber);
    return record;
  }

  /** A subscriber left: the channel counts as used now, and may be released later. */
  leave(channel: ChannelName, subscriber: S): void {
    const record = this.#channels.get(channel);
    if (!record?.subscribers?.delete(subscriber)) return;
    if (record.subscribers.size === 0) {
      record.subscribers = null;
      record.usedAt = record.movedAt = this.#now();
      this.#unsubscribed.add(record);
    }
  }

  /**
   * Drops history past its age and releases channels without subscribers unused for the idle
   * TTL. Costs O(channels with history + channels released).
   */
  sweep(): void {
    const now = this.#now();
    const oldest = now - this.#retention.ttlMs;
    for (const record of this.#retaining) this.#expire(record, oldest);
    const idleSince = now - this.#idleTtlMs;
    for (const record of this.#unsubscribed) {
      // Usage order: past the first channel moved back recently, every later one was moved
      // (so used) later still.
      if (record.movedAt > idleSince) break;
      if (record.usedAt > idleSince) continue;
      this.#release(record);
    }
  }

  #expire(record: ChannelRecord<S>, oldest: number): void {
    const { history } = record;
    let n = 0;
    for (let i = record.head; i < history.length && (history[i] as Retained).at < oldest; i++) n++;
    if (n > 0) this.#dropFront(record, n);
  }

  /** Drops the `n` oldest retained events of `record`. */
  #dropFront(record: ChannelRecord<S>, n: number): void {
    let bytes = 0;
    for (let i = record.head; i < record.head + n; i++)
      bytes += (record.history[i] as Retained).bytes;
    record.head += n;
    record.bytes -= bytes;
    this.#historyBytes -= bytes;
    this.#historyEvents -= n;
    if (record.head === record.history.length) {
      record.history = NO_HISTORY;
      record.head = 0;
      record.bytes -= HISTORY_ARRAY_BYTES;
      this.#historyBytes -= HISTORY_ARRAY_BYTES;
      this.#retaining.delete(record);
    } else if (record.head > 1024 && record.head * 2 > record.history.length) {
      // Cut the front once it is most of the array: amortised O(1) per event.
      record.history = record.history.slice(record.head);
      record.head = 0;
    }
  }

  /** Drops the oldest events of the least recently published channels until under the cap. */
  #shedBytes(): void {
    for (const record of this.#retaining) {
      if (this.#historyBytes <= this.#maxHistoryBytes) return;
      let n = 0;
      let freed = 0;
      const { history } = record;
      for (let i = record.head; i < history.length; i++) {
        if (this.#historyBytes - freed <= this.#maxHistoryBytes) break;
        freed += (history[i] as Retained).bytes;
        n++;
      }
      this.#dropFront(record, n);
    }
  }

  /** Forgets a channel (one without subscribers), with whatever history it still has. */
  #release(record: ChannelRecord<S>): void {
    if (record.history.length > record.head) {
      this.#dropFront(record, record.history.length - record.head);
    }
    this.#channels.delete(record.name);
    this.#unsubscribed.delete(record);
  }

  /** Releases the least recently used channel without subscribers, or refuses. */
  #evictOne(): void {
    const oldest = this.#unsubscribed.values().next();
    if (oldest.done) throw new ChannelCapacityError(this.#maxChannels);
    this.#release(oldest.value);
  }
}
