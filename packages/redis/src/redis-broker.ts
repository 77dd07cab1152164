/**
 * The Redis broker: the one path every event takes between pods.
 *
 * Key and channel layout (all names of one channel share a Cluster slot through the hash tag;
 * see `redis-keys.ts`):
 *
 *     <prefix>:{channel:general}          pub/sub channel (PUBLISH/SUBSCRIBE; Cluster: sharded)
 *     <prefix>:meta:{channel:general}     hash {epoch, offset, life}, TTL `metaTtlSeconds` from the
 *                                         last publish or position read
 *     <prefix>:history:{channel:general}  stream, id `<offset>-0`, MAXLEN ~ `historySize`,
 *                                         TTL `historyTtlSeconds`
 *     <prefix>:idem:{channel:general}:<key>  `<offset>:<epoch>` of an idempotent publish, PX =
 *                                         its window (`PublishOptions.idempotencyKey`)
 *     <prefix>:{probe:<podId>}            this pod's liveness probe (Cluster: one per master)
 *
 * `publish` and `position` run one Lua script (`publish-script.ts`), so position assignment,
 * history append and fan-out are atomic — and so is the idempotency check of a publish with a
 * key: of concurrent publishes with one key, on any pods, exactly one publishes. Live frames are
 * `<epoch>:<offset>:<life>:<data>` (`life`: which Redis wrote it, see `BrokerMessage.life`). A channel
 * gets its epoch (random, from the pod that first touches it) the first time either runs:
 * `position` of a never-published channel creates the meta hash with offset 0, so the first
 * publish lands in the epoch already reported. Every publish and position read sets the meta
 * hash's TTL again: a channel that pods hold subscribers for is read on every position check
 * and kept, one nobody uses goes `metaTtlSeconds` after its last use — a read never leaves a
 * key behind for longer. When the meta hash is lost (Redis restarted empty, or unused past
 * `metaTtlSeconds`), the next touch starts a new epoch with empty history.
 *
 * Readiness: Redis pub/sub is lossy and client libraries resubscribe silently, so `ready()`
 * is true only after this broker itself re-sent every subscription, Redis confirmed it and a
 * probe came back through the subscriber connection; after every reconnect that check runs
 * again, and `onResubscribed` listeners hear about it so the hub can backfill from history.
 * See `BrokerReadiness` (`broker-readiness.ts`) and its state (`readiness-state.ts`).
 */
import { randomBytes } from "node:crypto";
import { type ChannelName, isChannelName, type StreamPosition } from "@realtime/protocol";
import {
  type Broker,
  type BrokerListener,
  type HistoryPage,
  type HistoryStore,
  IdempotencyConflict,
  idempotencyOf,
  type PublishOptions,
  type PublishResult,
  requestIdOf,
} from "@realtime/server";
import { BrokerReadiness } from "./broker-readiness.ts";
import { ClusterTransport } from "./cluster-transport.ts";
import { readHistory } from "./history-script.ts";
import { LivenessProbe } from "./liveness-probe.ts";
import { runPublishScript, type ScriptCall, type ScriptReply } from "./publish-script.ts";
import type { PubSubTransport } from "./pubsub-transport.ts";
import { channelKeys, encodeTrace, idempotencyKey, parseFrame } from "./redis-keys.ts";
import { type ReplicaWait, replicaWait } from "./replication.ts";
import { StandaloneTransport } from "./standalone-transport.ts";
import { SubscriptionBatcher } from "./subscription-batcher.ts";

export interface RedisBrokerLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface RedisBrokerOptions {
  /** Standalone Redis URL. Default `redis://127.0.0.1:6379`. Ignored with `clusterNodes`. */
  url?: string | undefined;
  /** Seed nodes of a Redis Cluster; when given, the broker uses sharded pub/sub. */
  clusterNodes?: readonly { host: string; port: number }[] | undefined;
  /** Prefix of every key and channel. Default `realtime`. */
  prefix?: string | undefined;
  /** Events kept per channel (stream MAXLEN, trimmed approximately). Default 10000. */
  historySize?: number;
  /** Seconds a channel's history outlives its last publish (at most `metaTtlSeconds`). Default 300. */
  historyTtlSeconds?: number;
  /**
   * Seconds a channel's epoch and offset outlive its last use: a publish or a position read
   * (the hub reads the position of every channel it has subscribers for on its position check,
   * so keep the check interval well below this). Default 600.
   */
  metaTtlSeconds?: number;
  /**
   * Longest wait for a Redis command, in ms. Default 2000. `publish` and `position` fail
   * within about this long when Redis is down: at most this long waiting for the connection
   * (nothing is queued while disconnected), and at most this long for the reply.
   */
  commandTimeoutMs?: number;
  /**
   * Replicas that must hold a publish before it resolves (Redis `WAIT`). Default 0: the
   * master's acknowledgement is enough — and a failover can lose what the master acknowledged
   * last, or a master frozen past its node timeout can acknowledge writes after its replica
   * took over, writes that are then dropped. With 1 (a Cluster with a replica per master), a
   * publish no replica holds within {@link waitTimeoutMs} rejects instead: its outcome is
   * unknown and the publisher retries it with its idempotency key. Costs a round trip from the
   * master to its replica on every publish, and publishes on a shard whose replicas are all
   * down fail until one is back.
   */
  waitReplicas?: number;
  /** How long a publish waits for {@link waitReplicas}, in ms (below `commandTimeoutMs`). Default 500. */
  waitTimeoutMs?: number;
  /** How long `subscribe` waits for Redis to confirm, in ms. Default 5000. */
  subscribeTimeoutMs?: number;
  /** How long a liveness probe may take, in ms. Default 2000. */
  probeTimeoutMs?: number;
  /**
   * Interval of the liveness probe while ready, in ms; 0 turns it off. Default 5000: with the
   * 2 s timeout a silent partition is noticed within ~7 s, for one tiny publish per pod per
   * interval.
   */
  probeIntervalMs?: number;
  /** Names this pod's probe channel and connections. Default: random. */
  podId?: string;
  /** Default: silent. */
  logger?: RedisBrokerLogger;
}

/** Called after a reconnect once every channel is subscribed again, with those channels. */
export type ResubscribedListener = (channels: ChannelName[]) => void;

const silent: RedisBrokerLogger = { info() {}, warn() {}, error() {} };
const EPOCH_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** Bytes of randomness drawn at once for candidate epochs (409 epochs per draw). */
const EPOCH_POOL_BYTES = 4096;
let epochPool: Buffer = Buffer.alloc(0);
let epochPoolAt = 0;

/**
 * A fresh random epoch (10 base-36 characters); the script uses it only for a new channel.
 * Every publish and position read carries one: the bytes come from a pool filled by the CSPRNG
 * a few KB at a time, not one call (a syscall) per script.
 */
function newEpoch(): string {
  if (epochPoolAt + 10 > epochPool.length) {
    epochPool = randomBytes(EPOCH_POOL_BYTES);
    epochPoolAt = 0;
  }
  let epoch = "";
  for (let i = epochPoolAt; i < epochPoolAt + 10; i++) {
    epoch += EPOCH_ALPHABET[(epochPool[i] as number) % 36];
  }
  epochPoolAt += 10;
  return epoch;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class RedisBroker implements Broker, HistoryStore {
  readonly #prefix: string;
  readonly #historySize: number;
  readonly #historyTtlSeconds: number;
  readonly #metaTtlSeconds: number;
  readonly #commandTimeoutMs: number;
  readonly #wait: ReplicaWait | undefined;
  readonly #subscribeTimeoutMs: number;
  readonly #logger: RedisBrokerLogger;
  readonly #transport: PubSubTransport;
  readonly #batcher: SubscriptionBatcher;
  /** Pub/sub channel name → channel, for the channels this pod subscribes to. */
  readonly #channels = new Map<string, ChannelName>();
  readonly #probe: LivenessProbe;
  readonly #readiness: BrokerReadiness;
  readonly #resubscribedListeners = new Set<ResubscribedListener>();
  #listener: BrokerListener = () => {};

  constructor(options: RedisBrokerOptions = {}) {
    this.#prefix = options.prefix ?? "realtime";
    this.#historySize = options.historySize ?? 10_000;
    this.#metaTtlSeconds = options.metaTtlSeconds ?? 600;
    // History is worth nothing once its channel's epoch is gone (the next publish starts a new
    // one and deletes it): it never outlives the meta hash.
    this.#historyTtlSeconds = Math.min(options.historyTtlSeconds ?? 300, this.#metaTtlSeconds);
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 2_000;
    this.#wait = replicaWait(options.waitReplicas, options.waitTimeoutMs);
    this.#subscribeTimeoutMs = options.subscribeTimeoutMs ?? 5_000;
    this.#logger = options.logger ?? silent;
    const podId = options.podId ?? newEpoch();
    const events = {
      message: (channel: string, text: string) => this.#onMessage(channel, text),
      down: (reason: string) => this.#readiness.down(reason),
      up: () => this.#readiness.kick(),
      error: (error: Error) => this.#readiness.error(error),
    };
    const common = { prefix: this.#prefix, podId, commandTimeoutMs: this.#commandTimeoutMs };
    this.#transport =
      options.clusterNodes && options.clusterNodes.length > 0
        ? new ClusterTransport({ ...common, nodes: options.clusterNodes }, events)
        : new StandaloneTransport(
            { ...common, url: options.url ?? "redis://127.0.0.1:6379" },
            events,
          );
    this.#probe = new LivenessProbe(this.#transport, options.probeTimeoutMs ?? 2_000);
    this.#batcher = new SubscriptionBatcher({
      timeoutMs: this.#subscribeTimeoutMs,
      send: (kind, channels) =>
        kind === "subscribe"
          ? this.#transport.subscribe(channels)
          : this.#transport.unsubscribe(channels),
    });
    this.#readiness = new BrokerReadiness({
      transport: this.#transport,
      batcher: this.#batcher,
      probe: this.#probe,
      subscribeTimeoutMs: this.#subscribeTimeoutMs,
      probeIntervalMs: options.probeIntervalMs ?? 5_000,
      logger: this.#logger,
      reconfirmed: (names) => this.#reconfirmed(names),
    });
    this.#readiness.kick();
  }

  /** {@link Broker.publish}; an idempotency key is checked and stored by the publish script. */
  async publish(
    channel: ChannelName,
    data: string,
    options?: PublishOptions,
  ): Promise<PublishResult> {
    const checked = idempotencyOf(options);
    const idempotency = checked
      ? {
          key: idempotencyKey(this.#prefix, channel, checked.key),
          windowMs: checked.windowMs,
          fingerprint: checked.fingerprint,
        }
      : undefined;
    const trace = encodeTrace(Date.now(), requestIdOf(options));
    const { conflict, ...result } = await this.#runScript(
      "publish",
      channel,
      data,
      idempotency,
      trace,
    );
    if (conflict) throw new IdempotencyConflict();
    return result;
  }

  async position(channel: ChannelName): Promise<StreamPosition> {
    // Creates the channel's epoch when it has none, so the first publish stays in it; the
    // read counts as a use (the meta hash's TTL starts again).
    const { epoch, offset } = await this.#runScript("position", channel, "");
    return { epoch, offset };
  }

  /**
   * {@link Broker.rebase}: a new epoch when the channel went back below `seen` (with
   * `conflict`: whatever its offset now), unless it left `seen.epoch` already.
   */
  async rebase(
    channel: ChannelName,
    seen: StreamPosition,
    options?: { readonly conflict?: boolean },
  ): Promise<StreamPosition> {
    const { epoch, offset } = await this.#runScript(
      "rebase",
      channel,
      `${seen.offset}:${seen.epoch}${options?.conflict ? ":conflict" : ""}`,
    );
    return { epoch, offset };
  }

  /** History of `channel` after offset `after` (see {@link HistoryStore}). */
  async read(channel: ChannelName, after: number, limit: number): Promise<HistoryPage> {
    if (this.#closed) throw new Error("broker is closed");
    await this.#transport.whenCommandsReady(this.#commandTimeoutMs);
    const keys = channelKeys(this.#prefix, channel);
    return readHistory(this.#transport.commands, channel, keys, after, limit);
  }

  /** {@link Broker.onReconnect}: the hub backfills after every re-confirmation. */
  onReconnect(listener: () => void): void {
    this.onResubscribed(() => listener());
  }

  async subscribe(channel: ChannelName): Promise<void> {
    if (this.#closed) throw new Error("broker is closed");
    if (!isChannelName(channel)) throw new TypeError(`invalid channel name: ${channel}`);
    const name = channelKeys(this.#prefix, channel).pubsub;
    this.#channels.set(name, channel);
    try {
      await this.#batcher.subscribe(name);
    } catch (error) {
      if (!this.#batcher.wants(name)) this.#channels.delete(name);
      throw error;
    }
  }

  async unsubscribe(channel: ChannelName): Promise<void> {
    const name = channelKeys(this.#prefix, channel).pubsub;
    this.#channels.delete(name);
    await this.#batcher.unsubscribe(name);
  }

  setListener(listener: BrokerListener): void {
    this.#listener = listener;
  }

  /** True while connected and every subscription (re)confirmed by a probe round trip. */
  ready(): boolean {
    return this.#readiness.ready();
  }

  /** Resolves once {@link ready} is true; rejects after `timeoutMs` (default 10000). */
  waitUntilReady(timeoutMs = 10_000): Promise<void> {
    return this.#readiness.waitUntilReady(timeoutMs);
  }

  /** Registers `listener` for every re-confirmation after a reconnect. Returns its remover. */
  onResubscribed(listener: ResubscribedListener): () => void {
    this.#resubscribedListeners.add(listener);
    return () => this.#resubscribedListeners.delete(listener);
  }

  /** The channels this pod currently wants messages of. */
  subscribedChannels(): ChannelName[] {
    return [...this.#channels].filter(([n]) => this.#batcher.wants(n)).map(([, c]) => c);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#readiness.close();
    this.#batcher.close();
    this.#probe.close();
    await this.#transport.close();
  }

  async #runScript(
    mode: ScriptCall["mode"],
    channel: ChannelName,
    data: string,
    idempotency?: ScriptCall["idempotency"],
    trace?: string,
  ): Promise<ScriptReply> {
    if (this.#closed) throw new Error("broker is closed");
    if (!isChannelName(channel)) throw new TypeError(`invalid channel name: ${channel}`);
    try {
      await this.#transport.whenCommandsReady(this.#commandTimeoutMs);
      return await runPublishScript(this.#transport.commands, {
        mode,
        keys: channelKeys(this.#prefix, channel),
        idempotency,
        candidateEpoch: newEpoch(),
        data,
        trace,
        historySize: this.#historySize,
        historyTtlSeconds: this.#historyTtlSeconds,
        metaTtlSeconds: this.#metaTtlSeconds,
        sharded: this.#transport.sharded,
        wait: this.#wait,
      });
    } catch (error) {
      throw new Error(`redis ${mode} on ${channel} failed: ${message(error)}`, { cause: error });
    }
  }

  #onMessage(name: string, text: string): void {
    if (this.#probe.owns(name)) {
      this.#probe.receive(text);
      return;
    }
    const channel = this.#channels.get(name);
    if (!channel || !this.#batcher.wants(name)) return; // unsubscribed while in flight
    const frame = parseFrame(text);
    if (!frame) {
      this.#logger.warn(`redis broker: ignoring a malformed frame on ${name}`);
      return;
    }
    try {
      const { epoch, offset, life, data, publishedAt, requestId } = frame;
      this.#listener({ channel, epoch, offset, life, data, publishedAt, requestId });
    } catch (error) {
      this.#logger.error(`redis broker: listener threw on ${channel}: ${message(error)}`);
    }
  }

  get #closed(): boolean {
    return this.#readiness.closed;
  }

  /** Ready again after a reconnect: tells the `onResubscribed` listeners which channels. */
  #reconfirmed(names: readonly string[]): void {
    const channels = names.flatMap((n) => {
      const channel = this.#channels.get(n);
      return channel && this.#batcher.wants(n) ? [channel] : [];
    });
    for (const listener of this.#resubscribedListeners) {
      try {
        listener(channels);
      } catch (error) {
        this.#logger.error(`redis broker: onResubscribed listener threw: ${message(error)}`);
      }
    }
  }
}
