/**
 * Open streams whose channels the product's backend granted (`AUTHZ_URL`) are asked about again
 * every `AUTHZ_CACHE_MS`: when the backend now denies one of a stream's channels, the stream is
 * closed with `close` 3503 `forbidden` naming those channels (`Hub.revoke`), and the client opens
 * a stream of the rest (docs/security.md, "Withdrawn grants").
 *
 * A withdrawn grant so stops a stream within two `AUTHZ_CACHE_MS` (the cached answer's life,
 * then the next pass). A backend that cannot answer a re-check does not close anything: the
 * stream keeps what it was granted until the backend answers (a denied open is the rule for new
 * requests; dropping every open stream on a backend blip would be an outage of its own).
 *
 * Grants from the token's `realtime` claim cannot change while the token lives, and the stream
 * ends when the token does (`token_expired`); a refreshed token is checked when the client opens
 * its next stream. The default and the fixed rules do not change at run time. So only the
 * backend's grants are watched.
 */
import type { ChannelName } from "@realtime/protocol";
import type { Hub, SseStream } from "@realtime/server";
import type { ChannelAccess, Decision } from "./access.ts";
import type { AccessMetrics } from "./authz.ts";
import type { Identity } from "./identity.ts";

export interface GrantWatchOptions {
  readonly access: ChannelAccess;
  readonly hub: Hub;
  /** How often the watched grants are asked about again (`AUTHZ_CACHE_MS`). */
  readonly intervalMs: number;
  /**
   * Streams asked about at once (`AUTHZ_MAX_CONCURRENCY`): as many as the backend client lets
   * through, so a pass over many streams neither crawls one stream at a time nor queues every
   * question at once (past their deadline, which would read as "unavailable" and keep them).
   */
  readonly concurrency: number;
  readonly metrics: AccessMetrics;
}

interface Watched {
  readonly identity: Identity;
  /** The stream's channels that the backend granted. */
  readonly channels: readonly ChannelName[];
}

export class GrantWatch {
  readonly #options: GrantWatchOptions;
  readonly #watched = new Map<SseStream, Watched>();
  readonly #timer: NodeJS.Timeout;
  #pass: Promise<void> | null = null;

  constructor(options: GrantWatchOptions) {
    this.#options = options;
    this.#timer = setInterval(() => void this.check(), options.intervalMs);
    this.#timer.unref();
  }

  /** Streams watched now. */
  get size(): number {
    return this.#watched.size;
  }

  /**
   * Watches `stream`'s channels that `decisions` (one per channel, from `ChannelAccess.require`)
   * show the backend granted; nothing when none did.
   */
  watch(stream: SseStream, identity: Identity, decisions: readonly Decision[]): void {
    const channels = stream.channels.filter((_, i) => decisions[i]?.source === "backend");
    if (channels.length === 0 || stream.ended) return;
    this.#watched.set(stream, { identity, channels });
    stream.onEnd(() => this.#watched.delete(stream));
  }

  /**
   * One pass over the watched streams (the timer runs it; public for tests). Resolves when every
   * stream was asked about; a pass still running is joined, not doubled.
   */
  check(): Promise<void> {
    this.#pass ??= this.#run().finally(() => {
      this.#pass = null;
    });
    return this.#pass;
  }

  async #run(): Promise<void> {
    const pending = [...this.#watched];
    const worker = async () => {
      for (let next = pending.shift(); next; next = pending.shift()) await this.#recheck(...next);
    };
    const workers = Math.max(1, Math.min(this.#options.concurrency, pending.length));
    await Promise.all(Array.from({ length: workers }, worker));
  }

  /** Asks again about `stream`'s channels (together: answers are shared by a user's streams). */
  async #recheck(stream: SseStream, { identity, channels }: Watched): Promise<void> {
    const { access, hub, metrics } = this.#options;
    if (stream.ended) return;
    const decisions = await Promise.all(
      channels.map((channel) => access.decide(identity, channel, "subscribe")),
    );
    const withdrawn = channels.filter((_, i) => {
      const decision = decisions[i];
      return decision !== undefined && !decision.allowed && !decision.unavailable;
    });
    if (withdrawn.length === 0 || stream.ended) return;
    this.#watched.delete(stream);
    hub.revoke(stream, withdrawn);
    metrics.grantRevoked();
  }

  close(): void {
    clearInterval(this.#timer);
    this.#watched.clear();
  }
}
