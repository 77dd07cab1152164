/**
 * A load-generator process: holds SSE subscribers on raw sockets (HTTP/1.1) or node:http2
 * sessions, parses their streams incrementally and keeps per-subscriber counts and one latency
 * histogram. Driven by the bench over IPC (`generator.ts`); runs pinned to the generator's core.
 *
 * Every subscriber `g` (global index) listens to channel `g % paths.length`. Reads share one
 * buffer (`onread`), so a read allocates nothing but a view.
 */
import http2 from "node:http2";
import net from "node:net";
import { Histogram } from "./histogram.ts";
import { markerTimeUs, nowUs, ResponseReader, readField, readMarker } from "./sse-parser.ts";
import { caughtUpAt, requiredSeq } from "./storm.ts";

export interface OpenCommand {
  op: "open";
  host: string;
  port: number;
  /** Request path per channel index. */
  paths: string[];
  /** Extra request header lines, each ending in CRLF (HTTP/1.1), or a header object (h2). */
  headers: Record<string, string>;
  /** Global index of the first subscriber opened by this command. */
  first: number;
  count: number;
  /** Source addresses and how many connections each may take. */
  addresses: { ip: string; n: number }[];
  concurrency: number;
  timeoutMs: number;
  /** HTTP/2: this many sessions, streams spread evenly over them. */
  h2Sessions?: number;
  /**
   * Reconnect storm (HTTP/1.1 only): track each stream's cursor (`id:`), `retry:` hint, resets
   * and event arrival times, and when a stream ends, resume it on `targets` (round robin) with
   * `Last-Event-ID`: at once, or after the server's `retry:` hint when `honourRetry`.
   */
  storm?: StormConfig;
}

export interface StormConfig {
  targets: { host: string; port: number }[];
  /** Source addresses for the resumes. */
  addresses: { ip: string; n: number }[];
  honourRetry: boolean;
}

export interface StormStatsResult {
  /** Per tracked subscriber: [dropUs, headUs, caughtUpUs] (see storm.ts). */
  outcomes: [number, number, number][];
  resets: number;
  /** Resume attempts in all (one per resume, more when an attempt failed). */
  attempts: number;
  /** Attempts that failed (error, non-200, timeout). */
  failedAttempts: number;
  /** Subscribers that gave up after {@link MAX_RESUME_ATTEMPTS}. */
  gaveUp: number;
  /** Status of the first failed attempt, or its error. */
  firstFailure: string | null;
}

export interface OpenResult {
  ok: number;
  status503: number;
  /** 503s that carried a Retry-After header. */
  retryAfter: number;
  otherStatus: number;
  errors: number;
  timeouts: number;
  ms: number;
  firstError: string | null;
}

export interface StatsResult {
  open: number;
  events: number;
  missing: number;
  incomplete: number;
  reordered: number;
  dups: number;
  closedEarly: number;
  bytes: number;
  lastEventUs: number;
  firstEventUs: number;
  latency: ReturnType<Histogram["toSparse"]>;
}

type Command =
  | OpenCommand
  | { op: "stormArm"; fromUs: number }
  | { op: "stormProgress" }
  | { op: "stormStats"; acks: number[][] }
  | { op: "stormLatency"; fromUs: number; toUs: number }
  | { op: "arm"; minSeq: number }
  | { op: "stats"; expected: number[]; fromSeq?: number }
  | { op: "closeAll" }
  | { op: "exit" };

const histogram = new Histogram();
let minSeq = 1;
let readAtUs = 0;
let bytes = 0;
let lastEventUs = 0;
let firstEventUs = 0;
let closedEarly = 0;
const subs: Sub[] = [];
const sessions: http2.ClientHttp2Session[] = [];
const shared = Buffer.allocUnsafe(256 * 1024);

/** Resume attempts per dropped stream before it gives up (each on the next target). */
const MAX_RESUME_ATTEMPTS = 5;
const RESUME_TIMEOUT_MS = 20_000;
let storm: (StormConfig & { headers: string; next: number }) | null = null;
/** Events published at or after this (µs) are recorded with their publish time (0: off). */
let stormFromUs = 0;
/** [publish µs, latency µs] pairs of the events published since {@link stormFromUs}. */
let stormPairs = new Float64Array(0);
let stormPairCount = 0;
/** Most pairs kept (2 × 8 B each): a bound, far above what a storm delivers to one worker. */
const STORM_PAIRS_MAX = 2_000_000;
let stormFailedAttempts = 0;
let stormFirstFailure: string | null = null;

/** What a tracked (storm) subscriber keeps. */
class StormSub {
  cursor: string | null = null;
  retryMs = 0;
  /** Arrival time (µs) of event `seq`, 0 if not (yet) received. */
  recvUs = new Float64Array(64);
  resets = 0;
  dropUs = 0;
  headUs = 0;
  attempts = 0;
  gaveUp = false;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }
}

const SubState = { Pending: 0, Open: 1, Failed: 2, Closing: 3 } as const;
type SubState = (typeof SubState)[keyof typeof SubState];

class Sub extends ResponseReader {
  readonly channel: number;
  state: SubState = SubState.Pending;
  opened = false;
  /** Distinct events received. */
  count = 0;
  last = 0;
  /** Events that arrived after a higher sequence number (publish order ≠ arrival order). */
  reordered = 0;
  dups = 0;
  /** Bit per sequence number seen. */
  seen = new Uint8Array(32);
  socket: net.Socket | null = null;
  stream: http2.ClientHttp2Stream | null = null;
  settle: ((outcome: string, retryAfter: boolean) => void) | null = null;
  /** Set for the streams of a reconnect storm. */
  storm: StormSub | null = null;

  constructor(channel: number) {
    super();
    this.channel = channel;
  }

  protected onHead(status: number, headers: Record<string, string>): void {
    this.head(status, headers["retry-after"] !== undefined);
  }

  head(status: number, retryAfter: boolean): void {
    if (status === 200) {
      this.state = SubState.Open;
      this.opened = true;
      this.settle?.("ok", false);
    } else {
      this.state = SubState.Failed;
      this.settle?.(status === 503 ? "503" : "status", retryAfter);
      this.destroy();
    }
    this.settle = null;
  }

  protected onEvent(buf: Buffer, start: number, end: number): void {
    const tracked = this.storm;
    if (tracked !== null) {
      const id = readField(buf, start, end, "id");
      if (id !== null) tracked.cursor = id;
      const retry = readField(buf, start, end, "retry");
      if (retry !== null) tracked.retryMs = Number(retry) || 0;
      if (readField(buf, start, end, "event") === "reset") tracked.resets++;
    }
    const seq = readMarker(buf, start, end);
    if (seq < 0) return;
    if (seq >= this.seen.length * 8) {
      if (seq > 100_000_000) return;
      const grown = new Uint8Array(Math.max(this.seen.length * 2, (seq >> 3) + 1));
      grown.set(this.seen);
      this.seen = grown;
    }
    const bit = 1 << (seq & 7);
    const byte = this.seen[seq >> 3] as number;
    if ((byte & bit) !== 0) {
      this.dups++;
      return;
    }
    this.seen[seq >> 3] = byte | bit;
    this.count++;
    if (seq < this.last) this.reordered++;
    else this.last = seq;
    lastEventUs = readAtUs;
    if (firstEventUs === 0) firstEventUs = readAtUs;
    if (seq >= minSeq) histogram.record(readAtUs - markerTimeUs);
    if (tracked !== null) {
      if (seq >= tracked.recvUs.length) {
        const grown = new Float64Array(Math.max(tracked.recvUs.length * 2, seq + 1));
        grown.set(tracked.recvUs);
        tracked.recvUs = grown;
      }
      tracked.recvUs[seq] = readAtUs;
      if (stormFromUs > 0 && markerTimeUs >= stormFromUs) recordStormPair(markerTimeUs, readAtUs);
    }
  }

  destroy(): void {
    if (this.socket) {
      // RST instead of FIN: no TIME_WAIT left behind on either side.
      if (!this.socket.destroyed) this.socket.resetAndDestroy();
    } else if (this.stream && !this.stream.destroyed) {
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  }
}

function open(cmd: OpenCommand): Promise<OpenResult> {
  const started = Date.now();
  const result: OpenResult = {
    ok: 0,
    status503: 0,
    retryAfter: 0,
    otherStatus: 0,
    errors: 0,
    timeouts: 0,
    ms: 0,
    firstError: null,
  };
  const addresses = cmd.addresses.map((a) => ({ ...a }));
  let next = 0;
  let settled = 0;
  let inflight = 0;
  const h2 = cmd.h2Sessions !== undefined && cmd.h2Sessions > 0;
  const ownSessions: http2.ClientHttp2Session[] = [];
  return new Promise((resolve) => {
    const deadline = setTimeout(
      () => finishAll("open phase exceeded its time bound"),
      Math.max(60_000, cmd.timeoutMs * 4 + cmd.count * 5),
    );
    const finishAll = (why: string | null) => {
      if (why && result.firstError === null) result.firstError = why;
      clearTimeout(deadline);
      result.ms = Date.now() - started;
      resolve(result);
    };
    const onSettled = (outcome: string, retryAfter: boolean, detail?: string) => {
      settled++;
      inflight--;
      if (outcome === "ok") result.ok++;
      else if (outcome === "503") {
        result.status503++;
        if (retryAfter) result.retryAfter++;
      } else if (outcome === "status") result.otherStatus++;
      else if (outcome === "timeout") result.timeouts++;
      else result.errors++;
      if (outcome !== "ok" && detail && result.firstError === null) result.firstError = detail;
      if (settled >= cmd.count) finishAll(null);
      else pump();
    };
    const pickAddress = (): string | undefined => {
      for (const a of addresses) {
        if (a.n > 0) {
          a.n--;
          return a.ip;
        }
      }
      return undefined;
    };
    const startOne = (g: number) => {
      const channel = g % cmd.paths.length;
      const path = cmd.paths[channel] as string;
      const sub = new Sub(channel);
      if (cmd.storm) sub.storm = new StormSub(path);
      subs.push(sub);
      inflight++;
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        sub.state = SubState.Failed;
        sub.settle = null;
        done = true;
        sub.destroy();
        onSettled("timeout", false, "timeout");
      }, cmd.timeoutMs);
      sub.settle = (outcome, retryAfter) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        onSettled(outcome, retryAfter);
      };
      const fail = (err: Error | string) => {
        const text =
          typeof err === "string"
            ? err
            : `${(err as NodeJS.ErrnoException).code ?? ""} ${err.message}`;
        if (sub.state === SubState.Open) closedEarly++;
        if (!done) {
          done = true;
          clearTimeout(timer);
          sub.state = SubState.Failed;
          onSettled("error", false, text);
        } else if (sub.state === SubState.Open) {
          sub.state = SubState.Failed;
        }
      };
      if (h2) {
        const session = ownSessions[g % ownSessions.length] as http2.ClientHttp2Session;
        const stream = session.request(
          { ":path": path, accept: "text/event-stream", ...cmd.headers },
          { endStream: true },
        );
        sub.stream = stream;
        stream.on("response", (headers) => {
          sub.head(Number(headers[":status"]), headers["retry-after"] !== undefined);
        });
        stream.on("data", (chunk: Buffer) => {
          readAtUs = nowUs();
          bytes += chunk.length;
          sub.feedBody(chunk);
        });
        stream.on("error", (err) => fail(err));
        stream.on("close", () => {
          if (sub.state === SubState.Open) {
            closedEarly++;
            sub.state = SubState.Failed;
          } else if (!done) fail("stream closed before its response");
        });
        return;
      }
      const localAddress = pickAddress();
      const socket = net.connect({
        host: cmd.host,
        port: cmd.port,
        localAddress,
        onread: {
          buffer: shared,
          callback: (n: number, buf: Uint8Array) => {
            readAtUs = nowUs();
            bytes += n;
            sub.feed((buf as Buffer).subarray(0, n));
            if (sub.error !== null && sub.state !== SubState.Failed) fail(sub.error);
            return true;
          },
        },
      });
      sub.socket = socket;
      socket.setNoDelay(true);
      socket.on("connect", () => {
        let head = `GET ${path} HTTP/1.1\r\nHost: ${cmd.host}:${cmd.port}\r\nAccept: text/event-stream\r\n`;
        for (const [name, value] of Object.entries(cmd.headers)) head += `${name}: ${value}\r\n`;
        socket.write(`${head}\r\n`);
      });
      socket.on("error", (err) => {
        // A storm stream that ends is resumed on its "close", which follows.
        if (!(sub.storm && sub.state === SubState.Open)) fail(err);
      });
      socket.on("close", () => {
        if (sub.state === SubState.Open) {
          if (sub.storm) return dropped(sub);
          closedEarly++;
          sub.state = SubState.Failed;
        } else if (!done) fail("closed before its response");
      });
    };
    const pump = () => {
      while (inflight < cmd.concurrency && next < cmd.count) startOne(cmd.first + next++);
    };
    if (cmd.storm) {
      let headers = "";
      for (const [name, value] of Object.entries(cmd.headers)) headers += `${name}: ${value}\r\n`;
      storm = {
        ...cmd.storm,
        addresses: cmd.storm.addresses.map((a) => ({ ...a })),
        headers,
        next: 0,
      };
    }
    if (cmd.count === 0) {
      finishAll(null);
      return;
    }
    if (h2) {
      const url = `http://${cmd.host}:${cmd.port}`;
      for (let s = 0; s < (cmd.h2Sessions as number); s++) {
        const ip = pickAddress();
        const session = http2.connect(url, {
          settings: { initialWindowSize: 1 << 20, enablePush: false },
          createConnection: () => net.connect({ host: cmd.host, port: cmd.port, localAddress: ip }),
        });
        session.on("error", () => {});
        session.once("connect", () => session.setLocalWindowSize(16 << 20));
        ownSessions.push(session);
        sessions.push(session);
      }
    }
    pump();
  });
}

function recordStormPair(publishUs: number, receivedUs: number): void {
  if (stormPairCount >= STORM_PAIRS_MAX) return;
  if (stormPairCount * 2 + 2 > stormPairs.length) {
    const grown = new Float64Array(Math.max(stormPairs.length * 2, 1 << 16));
    grown.set(stormPairs);
    stormPairs = grown;
  }
  stormPairs[stormPairCount * 2] = publishUs;
  stormPairs[stormPairCount * 2 + 1] = receivedUs - publishUs;
  stormPairCount++;
}

/** A storm stream ended: note when, and resume it (at once, or after its `retry:` hint). */
function dropped(sub: Sub): void {
  const tracked = sub.storm as StormSub;
  sub.state = SubState.Failed;
  if (tracked.dropUs === 0) tracked.dropUs = nowUs();
  const delay = storm?.honourRetry ? tracked.retryMs : 0;
  if (delay > 0) setTimeout(() => resume(sub), delay);
  else resume(sub);
}

/** One resume attempt of `sub` on the next target, with its last cursor as `Last-Event-ID`. */
function resume(sub: Sub): void {
  const tracked = sub.storm as StormSub;
  const config = storm;
  if (config === null || sub.state === SubState.Closing) return;
  if (tracked.attempts >= MAX_RESUME_ATTEMPTS) {
    tracked.gaveUp = true;
    return;
  }
  tracked.attempts++;
  const target = config.targets[config.next++ % config.targets.length] as {
    host: string;
    port: number;
  };
  let localAddress: string | undefined;
  for (const a of config.addresses) {
    if (a.n > 0) {
      a.n--;
      localAddress = a.ip;
      break;
    }
  }
  sub.restart();
  sub.state = SubState.Pending;
  let settled = false;
  const again = (why: string) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    stormFailedAttempts++;
    stormFirstFailure ??= why;
    if (sub.state !== SubState.Closing) {
      sub.state = SubState.Failed;
      sub.destroy();
      setImmediate(() => resume(sub));
    }
  };
  const timer = setTimeout(() => again("resume timed out"), RESUME_TIMEOUT_MS);
  sub.settle = (outcome) => {
    if (outcome !== "ok") return again(`resume answered ${outcome}`);
    settled = true;
    clearTimeout(timer);
    tracked.headUs = readAtUs;
  };
  const socket = net.connect({
    host: target.host,
    port: target.port,
    localAddress,
    onread: {
      buffer: shared,
      callback: (n: number, buf: Uint8Array) => {
        readAtUs = nowUs();
        bytes += n;
        sub.feed((buf as Buffer).subarray(0, n));
        if (sub.error !== null && sub.state === SubState.Open) sub.destroy();
        return true;
      },
    },
  });
  sub.socket = socket;
  socket.setNoDelay(true);
  socket.on("connect", () => {
    const cursor = tracked.cursor === null ? "" : `Last-Event-ID: ${tracked.cursor}\r\n`;
    socket.write(
      `GET ${tracked.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nAccept: text/event-stream\r\n${config.headers}${cursor}\r\n`,
    );
  });
  socket.on("error", (err) => {
    if (!settled) again(`${(err as NodeJS.ErrnoException).code ?? ""} ${err.message}`);
  });
  socket.on("close", () => {
    if (sub.socket !== socket) return;
    if (sub.state === SubState.Open) dropped(sub);
    else if (!settled) again("closed before its response");
  });
}

function stormProgress(): { tracked: number; dropped: number; resumed: number; gaveUp: number } {
  let tracked = 0;
  let droppedCount = 0;
  let resumed = 0;
  let gaveUp = 0;
  for (const sub of subs) {
    const t = sub.storm;
    if (t === null || !sub.opened) continue;
    tracked++;
    if (t.dropUs > 0) droppedCount++;
    if (t.headUs > 0 && sub.state === SubState.Open) resumed++;
    if (t.gaveUp) gaveUp++;
  }
  return { tracked, dropped: droppedCount, resumed, gaveUp };
}

function stormStats(acks: number[][]): StormStatsResult {
  const outcomes: [number, number, number][] = [];
  let resets = 0;
  let attempts = 0;
  let gaveUp = 0;
  for (const sub of subs) {
    const t = sub.storm;
    if (t === null || !sub.opened) continue;
    resets += t.resets;
    attempts += t.attempts;
    if (t.gaveUp) gaveUp++;
    const required = requiredSeq(acks[sub.channel] ?? [], t.headUs);
    outcomes.push([t.dropUs, t.headUs, caughtUpAt(t.recvUs, required, t.headUs)]);
  }
  return {
    outcomes,
    resets,
    attempts,
    failedAttempts: stormFailedAttempts,
    gaveUp,
    firstFailure: stormFirstFailure,
  };
}

function stormLatency(fromUs: number, toUs: number): ReturnType<Histogram["toSparse"]> {
  const h = new Histogram();
  for (let i = 0; i < stormPairCount; i++) {
    const at = stormPairs[i * 2] as number;
    if (at >= fromUs && at <= toUs) h.record(stormPairs[i * 2 + 1] as number);
  }
  return h.toSparse();
}

/**
 * Counts and loss. `expected[channel]`: how many events each subscriber of the channel should
 * hold; with `fromSeq`, the sequence numbers `fromSeq … expected[channel]` it should hold, and
 * missing counts those it lacks (events of other sequence ranges do not make up for them).
 */
function stats(expected: number[], fromSeq?: number): StatsResult {
  let events = 0;
  let missing = 0;
  let incomplete = 0;
  let reordered = 0;
  let dups = 0;
  let openCount = 0;
  for (const sub of subs) {
    if (sub.state === SubState.Open) openCount++;
    if (!sub.opened) continue;
    events += sub.count;
    reordered += sub.reordered;
    dups += sub.dups;
    const want = expected[sub.channel] ?? 0;
    if (fromSeq !== undefined) {
      let lacking = 0;
      for (let seq = Math.max(1, fromSeq); seq <= want; seq++) {
        if (((sub.seen[seq >> 3] ?? 0) & (1 << (seq & 7))) === 0) lacking++;
      }
      missing += lacking;
      if (lacking > 0) incomplete++;
    } else if (sub.count < want) {
      missing += want - sub.count;
      incomplete++;
    }
  }
  return {
    open: openCount,
    events,
    missing,
    incomplete,
    reordered,
    dups,
    closedEarly,
    bytes,
    lastEventUs,
    firstEventUs,
    latency: histogram.toSparse(),
  };
}

async function closeAll(): Promise<void> {
  for (const sub of subs) {
    sub.state = SubState.Closing;
    sub.destroy();
  }
  for (const session of sessions) session.destroy();
  subs.length = 0;
  sessions.length = 0;
  histogram.reset();
  storm = null;
  stormFromUs = 0;
  stormPairs = new Float64Array(0);
  stormPairCount = 0;
  stormFailedAttempts = 0;
  stormFirstFailure = null;
  bytes = 0;
  lastEventUs = 0;
  firstEventUs = 0;
  closedEarly = 0;
  // Let the resets leave before the next command.
  await new Promise((resolve) => setTimeout(resolve, 50));
}

process.on("message", (message: { id: number; cmd: Command }) => {
  const { id, cmd } = message;
  const reply = (value: unknown) => process.send?.({ id, value });
  switch (cmd.op) {
    case "open":
      void open(cmd).then(reply);
      break;
    case "arm":
      minSeq = cmd.minSeq;
      histogram.reset();
      lastEventUs = 0;
      firstEventUs = 0;
      reply(null);
      break;
    case "stats":
      reply(stats(cmd.expected, cmd.fromSeq));
      break;
    case "stormArm":
      stormFromUs = cmd.fromUs;
      stormPairCount = 0;
      reply(null);
      break;
    case "stormProgress":
      reply(stormProgress());
      break;
    case "stormStats":
      reply(stormStats(cmd.acks));
      break;
    case "stormLatency":
      reply(stormLatency(cmd.fromUs, cmd.toUs));
      break;
    case "closeAll":
      void closeAll().then(() => reply(null));
      break;
    case "exit":
      reply(null);
      setTimeout(() => process.exit(0), 10);
      break;
  }
});
process.on("disconnect", () => process.exit(0));
