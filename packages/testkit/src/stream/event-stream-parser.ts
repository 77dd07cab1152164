/**
 * The SSE parsing algorithm for test clients, line by line across chunks: calls `onBlock` per
 * complete block (with the last event ID buffer, which persists across blocks as in the spec)
 * and `onRetry` per `retry:` field.
 */
export interface Block {
  /** The last event ID buffer after this block. */
  readonly id: string;
  readonly event: string | null;
  readonly data: string | null;
}

export class EventStreamParser {
  readonly #onBlock: (block: Block) => void;
  readonly #onRetry: (ms: number) => void;
  #pending = "";
  #id: string;
  #event: string | null = null;
  #data: string[] = [];
  #sawField = false;

  constructor(id: string, onBlock: (block: Block) => void, onRetry: (ms: number) => void) {
    this.#id = id;
    this.#onBlock = onBlock;
    this.#onRetry = onRetry;
  }

  feed(chunk: string): void {
    const text = this.#pending + chunk;
    let start = 0;
    for (;;) {
      const end = text.indexOf("\n", start);
      if (end < 0) break;
      let line = text.slice(start, end);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      start = end + 1;
      this.#line(line);
    }
    this.#pending = text.slice(start);
  }

  #line(line: string): void {
    if (line === "") {
      if (this.#sawField) {
        this.#onBlock({
          id: this.#id,
          event: this.#event,
          data: this.#data.length > 0 ? this.#data.join("\n") : null,
        });
      }
      this.#event = null;
      this.#data = [];
      this.#sawField = false;
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") {
      if (!value.includes("\0")) this.#id = value;
      this.#sawField = true;
    } else if (field === "event") {
      this.#event = value;
      this.#sawField = true;
    } else if (field === "data") {
      this.#data.push(value);
      this.#sawField = true;
    } else if (field === "retry" && /^\d+$/.test(value)) {
      this.#onRetry(Number(value));
    }
  }
}

/** An `EventSource` over a shared HTTP/2 connection (see the file comment). */
