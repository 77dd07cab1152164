/**
 * What the history tests share: real cursors of a fixed epoch, history answers as the service
 * gives them, and a scripted `fetch` that answers from a queue (or when the test releases it).
 */
import { decodeCursor, encodeCursor, lookupCursor } from "@realtime/protocol";
import type { RealtimeClientOptions } from "../client-api.ts";
import { chat, settle } from "./client-fixture.ts";

export const ROOM = "channel:room";
export const OTHER = "user:u1";
export const EPOCH = "epoch-1";

/** The stream's cursor over `positions` (channel → offset), all in {@link EPOCH}. */
export const cursor = (positions: Record<string, number>, epoch = EPOCH) =>
  encodeCursor(Object.entries(positions).map(([channel, offset]) => [channel, { epoch, offset }]));

/** The id an event of `channel` at `offset` has on a history page (a one-channel cursor). */
export const idOf = (channel: string, offset: number, epoch = EPOCH) =>
  cursor({ [channel]: offset }, epoch);

/** `channel`'s offset in a stream's cursor (null when absent). */
export function offsetIn(text: string | null, channel: string, epoch = EPOCH): number | null {
  const decoded = text === null ? null : decodeCursor(text);
  const found = decoded && lookupCursor(decoded, channel, epoch);
  return found?.kind === "position" ? found.offset : null;
}

/** A history body with chat events `first..last` of ROOM ending at `last`. */
export function pageBody(first: number, last: number, previous: string | null = null) {
  const events = [];
  for (let offset = first; offset <= last; offset++) {
    events.push({ id: idOf(ROOM, offset), event: chat(ROOM, `m${offset}`) });
  }
  return { channel: ROOM, events, cursor: idOf(ROOM, last), previous };
}

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });

/** A `fetch` that answers from a queue and records what it was asked. */
export function scriptedFetch() {
  const requests: Array<{ url: string; init: RequestInit | undefined }> = [];
  const answers: Array<(init: RequestInit | undefined) => Promise<Response>> = [];
  const fetch: RealtimeClientOptions["fetch"] = (url, init) => {
    requests.push({ url, init });
    const answer = answers.shift();
    if (!answer) return Promise.reject(new Error(`unexpected request ${url}`));
    return answer(init);
  };
  return {
    fetch,
    requests,
    answer: (response: Response) => answers.push(() => Promise.resolve(response)),
    /** An answer the test releases later; rejects like fetch when the request is aborted. */
    hold: () => {
      let release: (response: Response) => void = () => {};
      answers.push(
        (init) =>
          new Promise<Response>((resolve, reject) => {
            release = resolve;
            init?.signal?.addEventListener("abort", () =>
              reject(new DOMException("aborted", "AbortError")),
            );
          }),
      );
      return (response: Response) => release(response);
    },
  };
}

/** Resolves once `check` holds, re-checking after each macrotask (bounded). */
export async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await settle();
  }
  throw new Error(`never happened: ${what}`);
}
