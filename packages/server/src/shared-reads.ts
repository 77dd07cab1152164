/**
 * Reads that streams opening at the same time share: the broker's position of a channel, and
 * a page of a channel's history after a given offset. When many clients of one channel open
 * or resume at once (a pod died and its clients came back), each would make the same read,
 * one Redis round trip and one script each.
 *
 * A read is never joined once it is under way: a request made while a read of the same key is
 * in flight waits for the next one, which starts as soon as that read settles and serves every
 * request made in between. So every answer comes from a read that began after the request
 * was made — exactly what a read of its own would have seen then (a position read after the
 * stream joined its channel, a history page after the resume was planned), never older. With
 * nothing in flight, a request is read at once, as before: no added delay. At most two reads
 * per key are outstanding, whatever the number of streams.
 */
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { Broker } from "./broker.ts";
import type { HistoryPage, HistoryStore } from "./history-store.ts";

interface Waiter<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (reason: unknown) => void;
}

/** A key with a read under way, and who waits for the next. */
interface Slot<T, A> {
  /** Requests made while that read is under way: served by the next read (null when none). */
  next: { arg: A; waiters: Waiter<T>[] } | null;
}

/**
 * Coalesces reads by key, as described above. `merge` combines the arguments of the requests
 * one read serves (e.g. the largest page asked for); `answer` cuts that read's result down to
 * what each request asked for.
 */
class Coalescer<T, A> {
  readonly #slots = new Map<string, Slot<T, A>>();
  readonly #read: (arg: A) => Promise<T>;
  readonly #merge: (a: A, b: A) => A;

  constructor(read: (arg: A) => Promise<T>, merge: (a: A, b: A) => A) {
    this.#read = read;
    this.#merge = merge;
  }

  request(key: string, arg: A): Promise<T> {
    const slot = this.#slots.get(key);
    if (slot === undefined) {
      const fresh: Slot<T, A> = { next: null };
      this.#slots.set(key, fresh);
      const read = this.#start(arg);
      void read.then(
        () => this.#settled(key, fresh),
        () => this.#settled(key, fresh),
      );
      return read;
    }
    return new Promise<T>((resolve, reject) => {
      if (slot.next === null) slot.next = { arg, waiters: [{ resolve, reject }] };
      else {
        slot.next.arg = this.#merge(slot.next.arg, arg);
        slot.next.waiters.push({ resolve, reject });
      }
    });
  }

  /** A read, as a promise even when the reader throws. */
  #start(arg: A): Promise<T> {
    try {
      return this.#read(arg);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #settled(key: string, slot: Slot<T, A>): void {
    const next = slot.next;
    if (next === null) {
      this.#slots.delete(key);
      return;
    }
    slot.next = null;
    void this.#start(next.arg).then(
      (value) => {
        this.#settled(key, slot);
        for (const w of next.waiters) w.resolve(value);
      },
      (error: unknown) => {
        this.#settled(key, slot);
        for (const w of next.waiters) w.reject(error);
      },
    );
  }
}

/** The broker's position of a channel, shared by the streams that ask for it at once. */
export class SharedPositions {
  readonly #reads: Coalescer<StreamPosition, ChannelName>;

  constructor(broker: Broker) {
    this.#reads = new Coalescer(
      (channel) => broker.position(channel),
      (a) => a,
    );
  }

  position(channel: ChannelName): Promise<StreamPosition> {
    return this.#reads.request(channel, channel);
  }
}

interface PageRead {
  readonly channel: ChannelName;
  readonly after: number;
  readonly limit: number;
}

/**
 * A {@link HistoryStore} whose reads of the same channel after the same offset, asked for at
 * once, share one read of the largest page asked for; each request gets at most the
 * `limit` messages it asked for.
 */
export class SharedHistory implements HistoryStore {
  readonly #reads: Coalescer<HistoryPage, PageRead>;

  constructor(history: HistoryStore) {
    this.#reads = new Coalescer(
      (r) => history.read(r.channel, r.after, r.limit),
      (a, b) => (b.limit > a.limit ? b : a),
    );
  }

  async read(channel: ChannelName, after: number, limit: number): Promise<HistoryPage> {
    const page = await this.#reads.request(`${after} ${channel}`, { channel, after, limit });
    return page.messages.length <= limit
      ? page
      : { ...page, messages: page.messages.slice(0, limit) };
  }
}
