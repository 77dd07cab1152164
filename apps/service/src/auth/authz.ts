/**
 * `AUTHZ_URL`: channel decisions from the product's backend, for rules a token cannot carry
 * (membership that changes, a paid plan, a ban).
 *
 * The pod POSTs `{ "userId", "channel", "action" }` (JSON; `action` is `subscribe` or
 * `publish`; a service token's `userId` is `svc:<name>`) and reads only the status:
 * 2xx allows, 403 denies, 404 says "no rule here" (`CHANNEL_DEFAULT_ACCESS` decides), and
 * anything else — another status, a refused connection, no answer within `AUTHZ_TIMEOUT_MS` —
 * is `timeout`/`error`, which callers treat as a denial.
 *
 * Cost is bounded: answers are cached per user, channel and action for `AUTHZ_CACHE_MS`
 * (failures for at most a second, so an outage is not hammered by retries), concurrent asks of
 * one question share one request, at most `AUTHZ_MAX_CONCURRENCY` requests are in flight per pod
 * (the rest wait, inside their deadline), and the cache holds at most {@link MAX_CACHED} answers.
 */

/** What the backend said, as counted in `realtime_authz_requests_total`. */
export type AuthzResult = "allow" | "deny" | "no_rule" | "timeout" | "error";

/** Counters for the access rules (PrometheusMetrics implements them). */
export interface AccessMetrics {
  authzRequest(result: AuthzResult): void;
  grantRevoked(): void;
}

export const noAccessMetrics: AccessMetrics = { authzRequest() {}, grantRevoked() {} };

export interface AuthzQuestion {
  readonly userId: string;
  readonly channel: string;
  readonly action: "subscribe" | "publish";
}

export interface AuthzOptions {
  readonly url: string;
  readonly cacheMs: number;
  readonly timeoutMs: number;
  readonly maxConcurrency: number;
  readonly metrics?: AccessMetrics;
  readonly warn?: (message: string) => void;
  readonly now?: () => number;
}

/** Answers kept at most, over every user and channel; the oldest leaves first. */
export const MAX_CACHED = 100_000;

/** Longest a failure (timeout, error) is remembered: the backend is asked again after it. */
const FAILURE_CACHE_MS = 1_000;

interface Cached {
  readonly result: AuthzResult;
  readonly until: number;
}

export class AuthzClient {
  readonly #options: AuthzOptions;
  readonly #metrics: AccessMetrics;
  readonly #now: () => number;
  readonly #cache = new Map<string, Cached>();
  readonly #asking = new Map<string, Promise<AuthzResult>>();
  #inFlight = 0;
  readonly #queue: (() => void)[] = [];
  #lastWarning = 0;

  constructor(options: AuthzOptions) {
    this.#options = options;
    this.#metrics = options.metrics ?? noAccessMetrics;
    this.#now = options.now ?? Date.now;
  }

  /** The backend's answer to `question`, from the cache while it is fresh. Never rejects. */
  ask(question: AuthzQuestion): Promise<AuthzResult> {
    const key = `${question.action}\u0000${question.userId}\u0000${question.channel}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      if (cached.until > this.#now()) return Promise.resolve(cached.result);
      this.#cache.delete(key);
    }
    const asking = this.#asking.get(key);
    if (asking !== undefined) return asking;
    const answer = this.#request(question).then((result) => {
      this.#asking.delete(key);
      this.#remember(key, result);
      this.#metrics.authzRequest(result);
      return result;
    });
    this.#asking.set(key, answer);
    return answer;
  }

  #remember(key: string, result: AuthzResult): void {
    const failed = result === "timeout" || result === "error";
    const ttl = failed ? Math.min(FAILURE_CACHE_MS, this.#options.cacheMs) : this.#options.cacheMs;
    if (this.#cache.size >= MAX_CACHED) {
      this.#cache.delete(this.#cache.keys().next().value as string);
    }
    this.#cache.set(key, { result, until: this.#now() + ttl });
  }

  async #request(question: AuthzQuestion): Promise<AuthzResult> {
    const deadline = AbortSignal.timeout(this.#options.timeoutMs);
    if (!(await this.#slot(deadline))) return "timeout";
    try {
      const response = await fetch(this.#options.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(question),
        signal: deadline,
        redirect: "error",
      });
      // Only the status matters; release the connection at once.
      await response.body?.cancel().catch(() => {});
      if (response.ok) return "allow";
      if (response.status === 403) return "deny";
      if (response.status === 404) return "no_rule";
      this.#warn(`AUTHZ_URL answered ${response.status}; treated as a denial`);
      return "error";
    } catch (error) {
      if (deadline.aborted) {
        this.#warn(`AUTHZ_URL did not answer within ${this.#options.timeoutMs} ms; denied`);
        return "timeout";
      }
      const reason = error instanceof Error ? (error.cause ?? error).toString() : String(error);
      this.#warn(`AUTHZ_URL could not be asked (${reason.slice(0, 200)}); denied`);
      return "error";
    } finally {
      this.#release();
    }
  }

  /** Waits for a request slot; false when `deadline` comes first. */
  #slot(deadline: AbortSignal): Promise<boolean> {
    if (this.#inFlight < this.#options.maxConcurrency) {
      this.#inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const granted = () => {
        deadline.removeEventListener("abort", expired);
        resolve(true);
      };
      const expired = () => {
        const index = this.#queue.indexOf(granted);
        if (index >= 0) this.#queue.splice(index, 1);
        resolve(false);
      };
      this.#queue.push(granted);
      deadline.addEventListener("abort", expired, { once: true });
    });
  }

  #release(): void {
    const next = this.#queue.shift();
    // The slot passes straight to the next waiter, so the count stays as it is.
    if (next) next();
    else this.#inFlight--;
  }

  /** At most one warning a second: an outage asks thousands of questions. */
  #warn(message: string): void {
    const now = this.#now();
    if (now - this.#lastWarning < 1_000) return;
    this.#lastWarning = now;
    this.#options.warn?.(message);
  }
}
