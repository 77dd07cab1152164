/**
 * The run's traffic: logical events at a steady rate, each either a chat message
 * (`POST /api/chat/messages` as one of the users, rooms only) or an event through the publish
 * API (`POST /api/publish` with a service token, rooms and users' channels), each through a pod
 * drawn from the seed. The body carries the event's id (`chaos:<seed>:<id>`) for the checker.
 *
 * One logical event is retried until it gets a 2xx, with the same `Idempotency-Key` every time:
 * after a 503 or 429 (refused, after `Retry-After`) and after no answer at all (cut, or a pod
 * frozen past the timeout: it may have been published, which is what the key is for), each
 * time through a pod drawn again. A 2xx is "accepted". Any other answer is a bug of the
 * harness or the service and is recorded as a stray.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type H2Pool, type PodAddress, request } from "./http-client.ts";
import type { Random } from "./random.ts";
import type { PublishedEvent, RunLog } from "./run-log.ts";

export interface PublisherOptions {
  readonly seed: number;
  /** Events per second over every channel. */
  readonly rate: number;
  readonly rooms: readonly string[];
  /** `user:<id>` channels (publish API only). */
  readonly userChannels: readonly string[];
  /** Tokens of the users who chat. */
  readonly userTokens: readonly string[];
  readonly serviceToken: string;
  readonly random: Random;
  readonly pods: () => readonly PodAddress[];
  readonly h2: H2Pool;
  readonly log: RunLog;
  readonly clock: () => number;
}

/** Share of events sent as chat messages (when the channel is a room). */
const CHAT_SHARE = 0.4;
/** A request not answered within this is given up (its outcome is unknown) and retried. */
const REQUEST_TIMEOUT_MS = 5_000;
/** Events in flight at most; past it the publisher waits (Redis down: everything is retrying). */
const MAX_IN_FLIGHT = 400;
/** Attempts whose pod and back-off are drawn up front; later ones cycle through them. */
const PLANNED_ATTEMPTS = 16;

export class Publisher {
  readonly #options: PublisherOptions;
  readonly #inFlight = new Set<Promise<void>>();
  #issuing = true;
  #giveUpAt = Infinity;
  /** Attempts that got no answer (their outcome was unknown until a retry settled it). */
  unanswered = 0;
  /** Attempts refused with 503 or 429. */
  refused = 0;

  constructor(options: PublisherOptions) {
    this.#options = options;
  }

  /** Publishes at the rate until {@link stopIssuing}. */
  async run(): Promise<void> {
    const { rate, random, clock } = this.#options;
    const interval = 1000 / rate;
    let due = clock();
    while (this.#issuing) {
      due += interval * random.between(0.5, 1.5);
      const wait = due - clock();
      if (wait > 0) await sleep(wait);
      // Far behind (a starved CPU): do not burst to catch up.
      else if (wait < -1_000) due = clock();
      if (!this.#issuing) break;
      while (this.#inFlight.size >= MAX_IN_FLIGHT && this.#issuing) {
        await Promise.race(this.#inFlight);
      }
      if (!this.#issuing) break;
      const useRoom = random.chance(0.8) || this.#options.userChannels.length === 0;
      const channel = random.pick(useRoom ? this.#options.rooms : this.#options.userChannels);
      const via = useRoom && random.chance(CHAT_SHARE) ? "chat" : "publish";
      this.#launch(channel, via, random);
    }
  }

  stopIssuing(): void {
    this.#issuing = false;
  }

  /** Waits for every event in flight; retries stop at `deadline` (their outcome stays unknown). */
  async settle(deadline: number): Promise<void> {
    this.#giveUpAt = deadline;
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  /** Publishes the final event of each channel (publish API) and waits for their 2xx. */
  async publishFinal(channels: readonly string[], deadline: number): Promise<number[]> {
    this.#giveUpAt = deadline;
    const events = channels.map((channel) => this.#launch(channel, "final", this.#options.random));
    await this.settle(deadline);
    return events.map((e) => e.id);
  }

  #launch(channel: string, via: PublishedEvent["via"], random: Random): PublishedEvent {
    const { log, clock, seed, userTokens } = this.#options;
    const event: PublishedEvent = {
      id: log.events.length,
      channel,
      via,
      sentAt: clock(),
      ackAt: null,
      attempts: 0,
      firstSeenAt: null,
    };
    log.events.push(event);
    const pods = this.#options.pods();
    const plan = Array.from({ length: PLANNED_ATTEMPTS }, () => ({
      pod: random.int(0, pods.length - 1),
      backoffMs: random.between(100, 600),
    }));
    const token = via === "chat" ? random.pick(userTokens) : this.#options.serviceToken;
    const text = `chaos:${seed}:${event.id}`;
    const body =
      via === "chat"
        ? JSON.stringify({ channel, content: text })
        : JSON.stringify({ channel, event: { type: "chaos", message: text } });
    const job = this.#deliver(event, via === "chat" ? "/api/chat/messages" : "/api/publish", {
      token,
      body,
      plan,
    });
    const tracked = job.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
    return event;
  }

  async #deliver(
    event: PublishedEvent,
    path: string,
    how: { token: string; body: string; plan: { pod: number; backoffMs: number }[] },
  ): Promise<void> {
    const { clock, h2, log, seed } = this.#options;
    for (let attempt = 0; ; attempt++) {
      const step = how.plan[attempt % how.plan.length] as { pod: number; backoffMs: number };
      const pods = this.#options.pods();
      const pod = pods[step.pod % pods.length] as PodAddress;
      event.attempts++;
      const answer = await request(pod, h2, {
        method: "POST",
        path,
        headers: {
          authorization: `Bearer ${how.token}`,
          "idempotency-key": `chaos-${seed}-${event.id}`,
        },
        body: how.body,
        timeoutMs: REQUEST_TIMEOUT_MS,
      });
      if (answer.status >= 200 && answer.status < 300) {
        event.ackAt = clock();
        return;
      }
      if (answer.status === 503 || answer.status === 429) this.refused++;
      else if (answer.status === 0 || answer.status >= 500) this.unanswered++;
      else {
        log.strays.push({
          subscriber: "publisher",
          at: clock(),
          what: `e${event.id} refused: ${answer.status} ${answer.body.slice(0, 300)}`,
        });
        return;
      }
      if (clock() >= this.#giveUpAt) return;
      await sleep(Math.min(2_000, Math.max(step.backoffMs, answer.retryAfterMs)));
    }
  }
}
