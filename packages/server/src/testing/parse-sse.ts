/** Parses SSE text with a spec parser, for assertions on what a stream wrote. */
import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface ParsedSse {
  readonly events: EventSourceMessage[];
  readonly retries: number[];
  readonly comments: string[];
  /** The `lastEventId` a browser would hold after reading all of it (id-only blocks count). */
  readonly lastEventId: string;
}

export function parseSse(text: string): ParsedSse {
  const events: EventSourceMessage[] = [];
  const retries: number[] = [];
  const comments: string[] = [];
  const parser = createParser({
    onEvent: (event) => events.push(event),
    onRetry: (ms) => retries.push(ms),
    onComment: (comment) => comments.push(comment),
  });
  parser.feed(text);
  return { events, retries, comments, lastEventId: lastIdOf(text) };
}

/** The last `id:` field in `text` — what `EventSource.lastEventId` would be. */
export function lastIdOf(text: string): string {
  let last = "";
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line.startsWith("id:")) last = line.slice(line.startsWith("id: ") ? 4 : 3);
  }
  return last;
}

/** The application events (unnamed SSE events), parsed from their JSON data. */
export function dataEvents(text: string): Array<Record<string, unknown>> {
  return parseSse(text)
    .events.filter((e) => e.event === undefined)
    .map((e) => JSON.parse(e.data) as Record<string, unknown>);
}

/** The control events with SSE event name `name`, parsed from their JSON data. */
export function controlEvents(text: string, name: string): Array<Record<string, unknown>> {
  return parseSse(text)
    .events.filter((e) => e.event === name)
    .map((e) => JSON.parse(e.data) as Record<string, unknown>);
}
