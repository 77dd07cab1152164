/**
 * Subscription bookkeeping without sockets: which channels are wanted, which were last sent to
 * Redis as subscribed, and which command each caller waits for. Calls made in the same tick
 * are merged into one SUBSCRIBE and one UNSUBSCRIBE (net of each other), and repeated calls
 * for a channel are idempotent. The I/O is the injected `send`.
 */

export type SubscriptionKind = "subscribe" | "unsubscribe";

export interface SubscriptionBatcherOptions {
  /** Sends one (UN)SUBSCRIBE for `channels`; resolves when Redis confirmed every channel. */
  send(kind: SubscriptionKind, channels: string[]): Promise<void>;
  /**
   * How long `subscribe` waits for Redis, in ms. On expiry it rejects and the channel is
   * dropped again (an UNSUBSCRIBE follows), so a rejected subscribe leaves nothing behind.
   * `unsubscribe` resolves after this long at the latest (delivery already stopped).
   */
  timeoutMs: number;
  /** Runs a flush later. Default `setImmediate`: every call made in one tick shares a command. */
  schedule?: (flush: () => void) => void;
}

const settled = Promise.resolve();

/** A caller's pending promise and how to settle it. */
interface Waiter {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * `Promise.withResolvers()` spelled out: the published package supports Node 20, which does not
 * have it (Node ≥ 22 does).
 */
function newWaiter(): Waiter {
  let resolve: () => void = () => {};
  let reject: (error: Error) => void = () => {};
  const promise = new Promise<void>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  return { promise, resolve, reject };
}

export class SubscriptionBatcher {
  readonly #options: SubscriptionBatcherOptions;
  /** Channels somebody wants to receive. */
  readonly #desired = new Set<string>();
  /** Channels whose last command sent to Redis was a SUBSCRIBE. */
  readonly #sent = new Set<string>();
  /** The last command sent for a channel, until Redis answered it. */
  readonly #inflight = new Map<string, Promise<void>>();
  /** Channels changed since the last flush. */
  readonly #touched = new Set<string>();
  #waiting = new Map<string, Waiter[]>();
  /** Every caller not answered yet, flushed or not (close rejects them all). */
  readonly #unsettled = new Set<Waiter>();
  #scheduled = false;
  #closed = false;

  constructor(options: SubscriptionBatcherOptions) {
    this.#options = options;
  }

  /** Resolves when Redis confirmed the subscription (or an unsubscribe superseded it). */
  subscribe(channel: string): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("broker is closed"));
    if (this.#desired.has(channel) && this.#sent.has(channel) && !this.#inflight.has(channel)) {
      return settled; // already live
    }
    if (!this.#desired.has(channel)) {
      this.#desired.add(channel);
      this.#touched.add(channel);
    }
    const waiter = this.#wait(channel);
    const timer = setTimeout(() => {
      waiter.reject(
        new Error(`subscribe ${channel} timed out after ${this.#options.timeoutMs} ms`),
      );
      // Roll back, so that what the caller was told (failed) is what Redis ends up with.
      if (this.#inflight.has(channel) && this.#desired.delete(channel)) this.#touch(channel);
    }, this.#options.timeoutMs);
    return waiter.promise.finally(() => clearTimeout(timer));
  }

  /** Stops delivery at once; resolves when Redis confirmed it (or after the timeout). */
  unsubscribe(channel: string): Promise<void> {
    if (this.#closed) return settled;
    if (this.#desired.delete(channel)) this.#touched.add(channel);
    else if (!this.#sent.has(channel) && !this.#inflight.has(channel)) return settled;
    const waiter = this.#wait(channel);
    const timer = setTimeout(() => waiter.resolve(), this.#options.timeoutMs);
    return waiter.promise.catch(() => {}).finally(() => clearTimeout(timer));
  }

  /** Whether messages of `channel` should be delivered. */
  wants(channel: string): boolean {
    return this.#desired.has(channel);
  }

  /** Channels last sent as subscribed: what a new connection must subscribe again. */
  active(): string[] {
    return [...this.#sent];
  }

  /** Rejects every pending call; later calls reject (subscribe) or resolve (unsubscribe). */
  close(): void {
    this.#closed = true;
    const error = new Error("broker is closed");
    for (const waiter of this.#unsettled) waiter.reject(error);
    this.#unsettled.clear();
    this.#waiting.clear();
    this.#desired.clear();
  }

  #wait(channel: string): Waiter {
    const waiter = newWaiter();
    this.#unsettled.add(waiter);
    const forget = () => this.#unsettled.delete(waiter);
    waiter.promise.then(forget, forget);
    const list = this.#waiting.get(channel);
    if (list) list.push(waiter);
    else this.#waiting.set(channel, [waiter]);
    this.#schedule();
    return waiter;
  }

  #touch(channel: string): void {
    this.#touched.add(channel);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    (this.#options.schedule ?? setImmediate)(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    for (const channel of this.#touched) {
      const want = this.#desired.has(channel);
      if (want && !this.#sent.has(channel)) {
        subscribe.push(channel);
        this.#sent.add(channel);
      } else if (!want && this.#sent.has(channel)) {
        unsubscribe.push(channel);
        this.#sent.delete(channel);
      }
    }
    this.#touched.clear();
    if (unsubscribe.length > 0) this.#send("unsubscribe", unsubscribe);
    if (subscribe.length > 0) this.#send("subscribe", subscribe);
    const waiting = this.#waiting;
    this.#waiting = new Map();
    for (const [channel, waiters] of waiting) {
      const command = this.#inflight.get(channel) ?? settled;
      for (const waiter of waiters) command.then(waiter.resolve, waiter.reject);
    }
  }

  #send(kind: SubscriptionKind, channels: string[]): void {
    const command = this.#options.send(kind, channels);
    for (const channel of channels) this.#inflight.set(channel, command);
    const done = (): string[] => {
      const current = channels.filter((channel) => this.#inflight.get(channel) === command);
      for (const channel of current) this.#inflight.delete(channel);
      return current;
    };
    command.then(done, () => {
      const current = done();
      if (kind !== "subscribe" || this.#closed) return;
      // Redis may or may not hold the subscription: drop it, an UNSUBSCRIBE makes sure.
      for (const channel of current) {
        if (this.#desired.delete(channel)) this.#touch(channel);
      }
    });
  }
}
