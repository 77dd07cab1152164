/**
 * Whether a {@link RedisBroker} is ready, and the loop that makes it so.
 *
 * Redis pub/sub is lossy and client libraries resubscribe silently, so the broker is ready
 * only after it re-sent every subscription itself, Redis confirmed it and a probe published
 * through the command connection came back through the subscriber connection. After every
 * reconnect that check runs again (not ready meanwhile), and a re-confirmation is reported
 * (`reconfirmed`) so the hub can backfill from history. A periodic probe catches a subscriber
 * connection that looks alive but receives nothing.
 *
 * The state and its changes are {@link transition} (`readiness-state.ts`); this class runs
 * the loop and performs the effects.
 */
import type { LivenessProbe } from "./liveness-probe.ts";
import type { PubSubTransport } from "./pubsub-transport.ts";
import {
  INITIAL_READINESS,
  type Readiness,
  type ReadinessEvent,
  transition,
} from "./readiness-state.ts";
import type { SubscriptionBatcher } from "./subscription-batcher.ts";
import { TimeoutError, withTimeout } from "./timeout.ts";

export interface BrokerReadinessOptions {
  readonly transport: PubSubTransport;
  readonly batcher: SubscriptionBatcher;
  readonly probe: LivenessProbe;
  /** How long the resubscription of a confirmation may take, in ms. */
  readonly subscribeTimeoutMs: number;
  /** Interval of the liveness probe while ready, in ms; 0 turns it off. */
  readonly probeIntervalMs: number;
  readonly logger: {
    info(message: string): void;
    warn(message: string): void;
    error(message: string): void;
  };
  /** Ready again after a reconnect, with the pub/sub names confirmed. */
  readonly reconfirmed: (names: readonly string[]) => void;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class BrokerReadiness {
  readonly #transport: PubSubTransport;
  readonly #batcher: SubscriptionBatcher;
  readonly #probe: LivenessProbe;
  readonly #subscribeTimeoutMs: number;
  readonly #logger: BrokerReadinessOptions["logger"];
  readonly #reconfirmed: (names: readonly string[]) => void;
  readonly #readyWaiters = new Set<() => void>();
  readonly #probeTimer: NodeJS.Timeout | undefined;
  /** Ready, confirming or closed, and what goes with it: changed by {@link #on} only. */
  #state: Readiness = INITIAL_READINESS;
  /** The confirmation loop runs (at most one at a time). */
  #confirming = false;
  /** Ends the confirmation loop's back-off early (a connection came up). */
  #wake: (() => void) | null = null;

  constructor(options: BrokerReadinessOptions) {
    this.#transport = options.transport;
    this.#batcher = options.batcher;
    this.#probe = options.probe;
    this.#subscribeTimeoutMs = options.subscribeTimeoutMs;
    this.#logger = options.logger;
    this.#reconfirmed = options.reconfirmed;
    if (options.probeIntervalMs > 0) {
      this.#probeTimer = setInterval(() => void this.#periodicProbe(), options.probeIntervalMs);
      this.#probeTimer.unref();
    }
  }

  get closed(): boolean {
    return this.#state.phase === "closed";
  }

  /** True while connected and every subscription (re)confirmed by a probe round trip. */
  ready(): boolean {
    return this.#state.phase === "ready" && this.#transport.connected();
  }

  /** Resolves once ready; rejects after `timeoutMs`. */
  async waitUntilReady(timeoutMs: number): Promise<void> {
    if (this.closed) throw new Error("broker is closed");
    if (this.ready()) return;
    let resolve = () => {};
    const became = new Promise<void>((r) => {
      resolve = r;
      this.#readyWaiters.add(r);
    });
    try {
      await withTimeout(became, timeoutMs, "waiting for the redis broker to be ready");
    } finally {
      this.#readyWaiters.delete(resolve);
    }
  }

  /** A connection went down, or a subscriber connection was replaced: confirm again. */
  down(reason: string): void {
    if (this.closed) return;
    this.#on({ type: "down" }, reason);
    this.kick();
  }

  /** A connection reported an error. */
  error(error: Error): void {
    this.#on({ type: "error" }, error.message);
  }

  /** Starts the confirmation loop, or wakes it from its back-off. */
  kick(): void {
    if (this.#state.phase !== "confirming") return;
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
    if (this.#confirming) return;
    this.#confirming = true;
    this.#confirmLoop()
      .catch((error) => this.#logger.error(`redis broker: ${message(error)}`))
      .finally(() => {
        this.#confirming = false;
      });
  }

  close(): void {
    this.#on({ type: "close" });
    clearInterval(this.#probeTimer);
    this.#wake?.();
    this.#readyWaiters.clear();
  }

  /**
   * The one way readiness changes: applies `event` ({@link transition}) and performs what it
   * asks. `detail` is for the logs (the reason, the error). Returns the new state.
   */
  #on(event: ReadinessEvent, detail = "", names: readonly string[] = []): Readiness {
    const { state, effects } = transition(this.#state, event);
    this.#state = state;
    for (const effect of effects) {
      switch (effect) {
        case "not-ready":
          this.#logger.warn(`redis broker not ready: ${detail}`);
          break;
        case "log-error":
          // ioredis reports every failed reconnect attempt: the first of each outage only.
          this.#logger.warn(`redis broker: connection error: ${detail}`);
          break;
        case "replace-connections":
          this.#logger.warn("redis broker: checks keep timing out, replacing the connections");
          this.#transport.resetConnections();
          break;
        case "ready":
        case "ready-again":
          this.#markUp(names, effect === "ready-again");
          break;
      }
    }
    return state;
  }

  async #confirmLoop(): Promise<void> {
    let attempt = 0;
    while (this.#state.phase === "confirming") {
      const generation = this.#state.generation;
      if (this.#transport.connected()) {
        try {
          const names = this.#batcher.active();
          // ioredis resubscribes on its own but does not await it: confirm it here.
          await withTimeout(
            this.#transport.subscribe(names),
            this.#subscribeTimeoutMs,
            "resubscribe",
          );
          await this.#probe.run();
          if (this.#on({ type: "confirmed", generation }, "", names).phase === "ready") return;
          continue; // something dropped meanwhile (or closed): confirm again
        } catch (error) {
          if (this.closed) return;
          attempt++;
          this.#logger.warn(`redis broker: confirming subscriptions failed: ${message(error)}`);
          this.#checkTimedOut(error);
        }
      }
      await this.#pause(Math.min(100 * 2 ** attempt, 2_000));
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #markUp(names: readonly string[], again: boolean): void {
    this.#logger.info(`redis broker ready${again ? " again" : ""} (${names.length} channels)`);
    for (const resolve of this.#readyWaiters) resolve();
    if (again) this.#reconfirmed(names);
  }

  async #periodicProbe(): Promise<void> {
    if (this.#state.phase !== "ready") return;
    const generation = this.#state.generation;
    try {
      await this.#probe.run();
    } catch (error) {
      if (generation !== this.#state.generation) return;
      this.#checkTimedOut(error);
      this.down(`liveness probe: ${message(error)}`);
    }
  }

  /**
   * Connections that look up but let a check time out twice in a row (a half-open socket, a
   * node that no longer gets the traffic) are replaced (`REPLACE_AFTER_TIMEOUTS`): waiting for
   * TCP to notice takes minutes. Fast errors do not count; the client libraries reconnect on
   * those themselves.
   */
  #checkTimedOut(error: unknown): void {
    if (error instanceof TimeoutError) this.#on({ type: "timed-out" });
  }
}
