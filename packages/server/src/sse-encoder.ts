/**
 * Server-sent events wire encoding, exact to the WHATWG HTML "event stream interpretation"
 * rules (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
 *
 * Pure string functions, no Node APIs: the output is written to the response as UTF-8.
 *
 * The hot path encodes an event's data **once** with {@link encodeData} and shares that block
 * between every connection, writing only a small per-connection {@link encodeId} line before
 * it. That split works because the parser collects fields until a blank line and then
 * dispatches them together, whatever their order, and `encodeData` ends with that blank line:
 *
 *     [encodeEventName(name)] + encodeId(cursor) + encodeData(json)
 *
 * A message's parts must be written back to back, with nothing in between (in Node, in the
 * same tick): a {@link HEARTBEAT} between an `id:` line and its data would end the message
 * early.
 *
 * Every line this module writes ends in LF only. The parser also accepts CR and CRLF, but a
 * CR at the end of a network chunk leaves some parsers waiting for a possible LF, so LF is
 * the ending that never delays an event.
 */

/**
 * Line breaks as the event stream parser sees them. Alternation order matters: CRLF is tried
 * first, so it is one break, not two (which would add an empty line to the data).
 */
const LINE_BREAKS = /\r\n|\r|\n/g;

/**
 * What may not appear in an `id:` or `event:` value: CR or LF would end the line early and
 * let the rest be read as new fields; a NUL makes the parser ignore the whole `id:` line.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching NUL is the point
const UNSAFE_FIELD_CHARACTER = /[\r\n\u0000]/;

/** The field an {@link SseFieldError} is about. */
export type SseField = "id" | "event" | "retry";

/**
 * A value that cannot be written as the given SSE field without changing the meaning of the
 * stream. A programming error on the server, never a client's fault: ids and event names are
 * made by the server, and client input is validated before it gets this far.
 */
export class SseFieldError extends Error {
  override readonly name = "SseFieldError";
  /** The field whose value was refused. */
  readonly field: SseField;

  constructor(field: SseField, message: string) {
    super(`SSE ${field}: ${message}`);
    this.field = field;
  }
}

/** A complete message for {@link encodeMessage}. */
export interface SseMessage {
  /** The `event:` name. Default: none, so the client fires a plain `message` event. */
  readonly event?: string | undefined;
  /** The `id:`, which the client sends back as `Last-Event-ID`. Default: none (unchanged). */
  readonly id?: string | undefined;
  /** The client's reconnection delay, in milliseconds. Default: none (unchanged). */
  readonly retry?: number | undefined;
  /** The event data. */
  readonly data: string;
}

/**
 * The data of one event: a `data: ` line per line of `data`, then the blank line that
 * dispatches the event.
 *
 * - `data` is split on CRLF, lone CR and LF, because the parser treats each as a line end: a
 *   raw break inside one `data:` line would end it and let the rest be read as a field
 *   (`"\n\nevent: admin"` would inject an event). The parser joins `data:` lines with LF, so
 *   every break comes back as LF: the only change SSE can make to data. JSON text never has
 *   a raw CR or LF, so JSON payloads come back byte for byte.
 * - Exactly one space follows the colon, because the parser strips exactly one: data that
 *   starts with a space keeps it.
 * - `""` still gives one `data: ` line: the parser dispatches an event only when some `data:`
 *   line was seen, and then an empty data line means empty data.
 * - U+2028, U+2029, U+0085 and U+FEFF are not line breaks in SSE and pass through; a BOM is
 *   only stripped at the very start of a stream, which always begins with a field name.
 * - A lone surrogate is sent as U+FFFD by the UTF-8 encoder; `JSON.stringify` never emits one.
 */
export function encodeData(data: string): string {
  // Fast path: JSON has no raw line breaks, so most events skip the regex.
  if (!data.includes("\n") && !data.includes("\r")) return `data: ${data}\n\n`;
  return `data: ${data.replace(LINE_BREAKS, "\ndata: ")}\n\n`;
}

/**
 * An `id:` line. The client keeps the last id it saw and sends it as `Last-Event-ID` when it
 * reconnects; `""` clears it (the client then sends no header).
 *
 * @throws {SseFieldError} when `id` contains CR or LF (they would end the line and let the rest
 *   be read as fields) or NUL (the parser then ignores the whole line, so the client would
 *   silently resume from an older id).
 */
export function encodeId(id: string): string {
  const problem = unsafeCharacter(id);
  if (problem !== null) throw new SseFieldError("id", problem);
  return `id: ${id}\n`;
}

/**
 * An `event:` line: the client fires an event of that name instead of `message`, so only
 * `addEventListener(name)` sees it.
 *
 * @throws {SseFieldError} when `name` is empty (the client would fire `message`, which is
 *   what leaving the line out says) or contains CR, LF or NUL (see {@link encodeId}).
 */
export function encodeEventName(name: string): string {
  if (name.length === 0) throw new SseFieldError("event", "event name is empty");
  const problem = unsafeCharacter(name);
  if (problem !== null) throw new SseFieldError("event", problem);
  return `event: ${name}\n`;
}

/**
 * A `retry:` line: the client's reconnection delay, in milliseconds.
 *
 * @throws {SseFieldError} unless `ms` is a safe integer ≥ 0: the parser ignores any value
 *   that is not only ASCII digits, and `String()` of a fraction, a negative number or a huge
 *   one (`1e+21`) is not.
 */
export function encodeRetry(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new SseFieldError("retry", `retry must be an integer ≥ 0 (ms), got ${String(ms)}`);
  }
  // `${-0}` is "0", so -0 needs no special case.
  return `retry: ${ms}\n`;
}

/**
 * Comment lines: `: ` per line of `text`, split like {@link encodeData} so that a line break
 * in `text` cannot start a field. The parser ignores comments; they keep idle connections
 * and proxies alive. No blank line follows: a comment needs none, and the caller decides
 * where messages end.
 */
export function encodeComment(text: string): string {
  return `: ${text.replace(LINE_BREAKS, "\n: ")}\n`;
}

/**
 * The keep-alive written on idle streams: a comment, then a blank line. The blank line
 * dispatches nothing (no `data:` was seen) but ends a "message", which helps buffering
 * proxies that flush on message boundaries. Write it only between messages (see the module
 * note).
 */
export const HEARTBEAT = ": hb\n\n";

/**
 * A whole message: `event:`, `id:`, `retry:`, the data lines and the blank line, each part
 * present only when given. Same rules and errors as the functions it composes.
 */
export function encodeMessage(message: SseMessage): string {
  let head = "";
  if (message.event !== undefined) head += encodeEventName(message.event);
  if (message.id !== undefined) head += encodeId(message.id);
  if (message.retry !== undefined) head += encodeRetry(message.retry);
  return head + encodeData(message.data);
}

/** Why `value` cannot be a field value, or null. Names the character, never echoes the value. */
function unsafeCharacter(value: string): string | null {
  const match = UNSAFE_FIELD_CHARACTER.exec(value);
  if (match === null) return null;
  const code = value.charCodeAt(match.index).toString(16).toUpperCase().padStart(4, "0");
  return `value contains U+${code} at index ${match.index}; CR, LF and NUL are not allowed`;
}
