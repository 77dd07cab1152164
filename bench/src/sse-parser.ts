/**
 * The load generator's incremental parsers, written for cost: one HTTP/1.1 response (head,
 * then chunked or plain body) fed with whatever slices the socket delivers, split into SSE
 * event blocks without copying unless a block straddles two reads.
 *
 * Event blocks are split on an empty line written as LF LF, which is what every server in the
 * bench writes (ours, Nchan, better-sse, the node:http hub). {@link parseBlock} applies the
 * full WHATWG field rules to one block, for checks that want the `id:` and `data:` values.
 *
 * Published bench events carry a marker `@<seq>@<publish time, µs>@` in their data, so a
 * receiver finds sequence and latency with one byte search and a digit loop per event.
 */

const LF = 10;
const CR = 13;
const AT = 64;
const LFLF = Buffer.from("\n\n");
const HEAD_END = Buffer.from("\r\n\r\n");
/** A response head larger than this is refused. */
const MAX_HEAD = 16 * 1024;
/** An event block larger than this is refused (the bench never sends one). */
const MAX_PENDING = 1024 * 1024;

/** Reader states. */
const State = {
  Head: 0,
  ChunkSize: 1,
  ChunkExt: 2,
  ChunkData: 3,
  ChunkEnd: 4,
  Body: 5,
  Done: 6,
} as const;
type State = (typeof State)[keyof typeof State];

/**
 * Reads one HTTP/1.1 response. Subclasses get the status and headers once, then every SSE
 * event block of the body. Feed it the bytes of the socket in order; each `feed` may reuse
 * the caller's buffer afterwards (nothing is kept by reference).
 */
export abstract class ResponseReader {
  #state: State = State.Head;
  #head: Buffer | null = null;
  #chunkLeft = 0;
  #bodyLeft = -1;
  #pending: Buffer | null = null;
  /** Set when the stream broke a rule; the reader then ignores further input. */
  error: string | null = null;

  /** Forgets the response read so far, to read a new one (a reconnect on a new socket). */
  restart(): void {
    this.#state = State.Head;
    this.#head = null;
    this.#chunkLeft = 0;
    this.#bodyLeft = -1;
    this.#pending = null;
    this.error = null;
  }

  /** The response head arrived. Header names are lower case; repeated headers are joined. */
  protected abstract onHead(status: number, headers: Record<string, string>): void;
  /** One complete event block: `buf[start, end)`, without its terminating blank line. */
  protected abstract onEvent(buf: Buffer, start: number, end: number): void;

  /** The body ended (last chunk, or content-length reached). */
  protected onBodyEnd(): void {}

  feed(data: Buffer): void {
    const buf = data;
    let i = 0;
    const end = buf.length;
    while (i < end && this.error === null) {
      switch (this.#state) {
        case State.Head: {
          const earlier = this.#head?.length ?? 0;
          const view = this.#head ? Buffer.concat([this.#head, buf.subarray(i)]) : buf.subarray(i);
          const at = view.indexOf(HEAD_END);
          if (at < 0) {
            if (view.length > MAX_HEAD) this.error = "response head too large";
            else this.#head = Buffer.from(view);
            return;
          }
          this.#head = null;
          this.#parseHead(view.toString("latin1", 0, at));
          i += at + 4 - earlier;
          break;
        }
        case State.ChunkSize: {
          const c = buf[i++] as number;
          if (c === LF) {
            if (this.#chunkLeft === 0) {
              this.#state = State.Done;
              this.onBodyEnd();
              return;
            }
            this.#state = State.ChunkData;
          } else if (c === CR) {
            // part of the line end
          } else if (c === 59 /* ; */) {
            this.#state = State.ChunkExt;
          } else {
            const digit = hexValue(c);
            if (digit < 0) this.error = "bad chunk size";
            else this.#chunkLeft = this.#chunkLeft * 16 + digit;
          }
          break;
        }
        case State.ChunkExt: {
          if (buf[i++] === LF) {
            this.#state = this.#chunkLeft === 0 ? State.Done : State.ChunkData;
            if (this.#state === State.Done) {
              this.onBodyEnd();
              return;
            }
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.#chunkLeft, end - i);
          this.#body(buf, i, i + n);
          i += n;
          this.#chunkLeft -= n;
          if (this.#chunkLeft === 0) this.#state = State.ChunkEnd;
          break;
        }
        case State.ChunkEnd: {
          if (buf[i++] === LF) this.#state = State.ChunkSize;
          break;
        }
        case State.Body: {
          let n = end - i;
          if (this.#bodyLeft >= 0) n = Math.min(n, this.#bodyLeft);
          this.#body(buf, i, i + n);
          i += n;
          if (this.#bodyLeft >= 0) {
            this.#bodyLeft -= n;
            if (this.#bodyLeft === 0) {
              this.#state = State.Done;
              this.onBodyEnd();
              return;
            }
          }
          break;
        }
        case State.Done:
          return;
      }
    }
  }

  #parseHead(text: string): void {
    const lines = text.split("\r\n");
    const status = /^HTTP\/1\.[01] ([0-9]{3})/.exec(lines[0] ?? "");
    if (!status) {
      this.error = "bad status line";
      return;
    }
    const headers: Record<string, string> = {};
    for (let k = 1; k < lines.length; k++) {
      const line = lines[k] as string;
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) {
      this.#state = State.ChunkSize;
    } else {
      this.#state = State.Body;
      const length = headers["content-length"];
      if (length !== undefined) this.#bodyLeft = Number(length);
    }
    this.onHead(Number(status[1]), headers);
    if (this.#bodyLeft === 0) {
      this.#state = State.Done;
      this.onBodyEnd();
    }
  }

  /** Body bytes `buf[start, end)`: split into event blocks. */
  #body(buf: Buffer, start: number, end: number): void {
    if (start < end) this.feedBody(buf.subarray(start, end));
  }

  /** Splits body bytes into event blocks (also used directly for HTTP/2 DATA frames). */
  feedBody(data: Buffer): void {
    let view = data;
    if (this.#pending) {
      view = Buffer.concat([this.#pending, data]);
      this.#pending = null;
    }
    let pos = 0;
    const end = view.length;
    for (;;) {
      const at = view.indexOf(LFLF, pos);
      if (at < 0) break;
      this.onEvent(view, pos, at);
      pos = at + 2;
    }
    if (pos < end) {
      if (end - pos > MAX_PENDING) this.error = "event block too large";
      else this.#pending = Buffer.from(view.subarray(pos, end));
    }
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Publish time (µs) of the marker found by the last successful {@link readMarker}. */
export let markerTimeUs = 0;

/**
 * Finds the bench marker `@<seq>@<time µs>@` in `buf[start, end)`. Returns the sequence
 * number (and sets {@link markerTimeUs}), or -1 when the block carries none (heartbeats, the
 * opening id-only block, control events).
 */
export function readMarker(buf: Buffer, start: number, end: number): number {
  const at = buf.indexOf(AT, start);
  if (at < 0 || at >= end) return -1;
  let i = at + 1;
  let seq = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i] as number;
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    digits++;
  }
  if (digits === 0 || buf[i] !== AT) return -1;
  let t = 0;
  digits = 0;
  for (i++; i < end; i++) {
    const c = buf[i] as number;
    if (c < 48 || c > 57) break;
    t = t * 10 + (c - 48);
    digits++;
  }
  if (digits === 0 || buf[i] !== AT) return -1;
  markerTimeUs = t;
  return seq;
}

/**
 * The value of field `name` in the event block `buf[start, end)` (the last such line, one
 * leading space dropped), or null when the block has none. For the reconnect storm's cursor
 * tracking (`id`, `retry`, `event`): lines end in LF, as every server in the bench writes them.
 */
export function readField(buf: Buffer, start: number, end: number, name: string): string | null {
  let found: string | null = null;
  let line = start;
  const n = name.length;
  while (line < end) {
    let eol = buf.indexOf(LF, line);
    if (eol < 0 || eol > end) eol = end;
    if (
      eol - line > n &&
      buf[line + n] === 58 /* : */ &&
      buf.toString("latin1", line, line + n) === name
    ) {
      let from = line + n + 1;
      if (buf[from] === 32) from++;
      found = buf.toString("utf8", from, eol);
    }
    line = eol + 1;
  }
  return found;
}

/** The marker text for event `seq` published at `timeUs`. */
export function marker(seq: number, timeUs: number): string {
  return `@${seq}@${timeUs}@`;
}

/** The monotonic clock every bench process shares (CLOCK_MONOTONIC), in µs. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** The fields of one event block, by the WHATWG rules (for checks, not the hot path). */
export interface ParsedBlock {
  id: string | undefined;
  event: string | undefined;
  data: string | undefined;
  retry: string | undefined;
  comments: string[];
}

export function parseBlock(block: string): ParsedBlock {
  const out: ParsedBlock = {
    id: undefined,
    event: undefined,
    data: undefined,
    retry: undefined,
    comments: [],
  };
  const data: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === "") continue;
    if (line.startsWith(":")) {
      out.comments.push(line.slice(1).trimStart());
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") data.push(value);
    else if (name === "id" && !value.includes("\u0000")) out.id = value;
    else if (name === "event") out.event = value;
    else if (name === "retry") out.retry = value;
  }
  if (data.length > 0) out.data = data.join("\n");
  return out;
}
