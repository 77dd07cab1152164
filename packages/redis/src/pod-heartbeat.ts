/**
 * A presence pod's heartbeat script calls, and what their answers say about Redis: whether the
 * pod was unknown or flagged as reaped, whether Redis came back from disk since the last beat
 * (another life), and whether a beat may have run without its answer reaching the pod.
 */
import type { ChannelName } from "@realtime/protocol";
import type { Script } from "./lua.ts";
import type { PodRegistryKeys } from "./presence-keys.ts";
import { errorMessage, type PresenceRedis } from "./presence-redis.ts";
import { runScript } from "./presence-script.ts";
import { chunks } from "./pubsub-transport.ts";
import type { ReplicaWait } from "./replication.ts";

/** ioredis's errors for a command it never wrote to Redis (the connection was not writable). */
const NOT_SENT = /isn't writeable|enableOfflineQueue/;

export class PodHeartbeat {
  readonly #redis: PresenceRedis;
  readonly #script: Script;
  readonly #registry: PodRegistryKeys;
  readonly #podId: string;
  readonly #wait: ReplicaWait | undefined;
  /** A beat found this pod's entries written by another life of Redis (see HEARTBEAT). */
  #wentBack = false;
  /**
   * The Redis life of the last answered beat, and when (this pod's clock) it was sent: a beat
   * Redis ran but whose answer was lost (Redis frozen past the command timeout, a cut link)
   * recorded the news in Redis, so the next beat there hears nothing — this pod compares for
   * itself (found by `npm run chaos`, seed 1305: a connection an RDB brought back, never reaped).
   */
  #life: string | null = null;
  /** A beat may have run in Redis without its answer reaching this pod (see `heartbeat`). */
  #unanswered = false;

  constructor(
    redis: PresenceRedis,
    script: Script,
    registry: PodRegistryKeys,
    podId: string,
    wait: ReplicaWait | undefined,
  ) {
    this.#redis = redis;
    this.#script = script;
    this.#registry = registry;
    this.#podId = podId;
    this.#wait = wait;
  }

  /** Whether a beat since {@link settled} found Redis back from disk (another life). */
  get wentBack(): boolean {
    return this.#wentBack;
  }

  /** Whether a beat may have run unanswered; cleared (see {@link keepUnanswered}). */
  takeUnanswered(): boolean {
    const unanswered = this.#unanswered;
    this.#unanswered = false;
    return unanswered;
  }

  /** What {@link takeUnanswered} took is still to be acted on (the heartbeat failed). */
  keepUnanswered(): void {
    this.#unanswered = true;
  }

  /** The heartbeat acted on {@link wentBack}. */
  settled(): void {
    this.#wentBack = false;
  }

  /**
   * The heartbeat script; true when the pod was unknown or flagged as reaped (and
   * {@link wentBack} set when Redis came back from disk since its last beat).
   */
  async beat(
    now: number,
    adds: readonly ChannelName[],
    removes: readonly ChannelName[],
  ): Promise<boolean> {
    await this.#redis.ready();
    const keys = [
      this.#registry.pods,
      this.#registry.reaped,
      this.#registry.index(this.#podId),
      this.#registry.lives,
    ];
    let changed = false;
    const addChunks = chunks(adds, 1_000);
    const removeChunks = chunks(removes, 1_000);
    const rounds = Math.max(1, addChunks.length, removeChunks.length);
    for (let i = 0; i < rounds; i++) {
      const add = addChunks[i] ?? [];
      let reply: unknown;
      try {
        reply = await runScript(
          this.#redis.client,
          this.#script,
          keys,
          [now, this.#podId, add.length, ...add, ...(removeChunks[i] ?? [])],
          this.#wait,
        );
      } catch (error) {
        // Sent, or maybe sent: it may have run (a command never written cannot have).
        if (!NOT_SENT.test(errorMessage(error))) this.#unanswered = true;
        throw error;
      }
      const [code, life, previous] = heartbeatReply(reply);
      if (code === 1) changed = true;
      if (code === 2) this.#wentBack = true;
      // Another life than the last answer's, and not its promoted replica: back from disk or
      // empty, whether or not a beat whose answer was lost already told Redis so.
      if (this.#life !== null && life !== this.#life && previous !== this.#life) {
        this.#wentBack = true;
      }
      this.#life = life;
    }
    return changed;
  }
}

/** The heartbeat script's `{code, life, previous life}`, checked. */
function heartbeatReply(reply: unknown): [number, string, string] {
  if (Array.isArray(reply) && reply.length === 3) {
    const [code, life, previous] = reply as unknown[];
    if (typeof code === "number" && typeof life === "string" && typeof previous === "string") {
      return [code, life, previous];
    }
  }
  throw new Error(`unexpected reply from the heartbeat script: ${JSON.stringify(reply)}`);
}
