/**
 * The attacks of issue 14, findings 1–3, as one ordinary signed-in user (or several) would
 * make them with nothing but HTTP: each runs until its signal aborts and says what it did.
 */
import http from "node:http";
import { publisherToken, userToken } from "../jwt.ts";
import type { BystanderResult } from "./bystanders.ts";
import type { AbusePod } from "./pod.ts";

export interface AttackResult {
  /** What the attacker got done (and how much was refused). */
  readonly work: string;
  /** Embedded mode: the most channels and history bytes the in-memory broker held. */
  readonly broker: { readonly channels: number; readonly historyBytes: number } | null;
  /** Live heap (after a full GC) before, at the attack's end and after; heap used at most during. */
  readonly heap: {
    readonly before: number;
    readonly end: number;
    readonly peakUsed: number;
    readonly after: number;
  };
  readonly redis: {
    readonly before: { bytes: number; keys: number };
    readonly peak: { bytes: number; keys: number };
    readonly after: { bytes: number; keys: number };
  } | null;
  readonly bystander: BystanderResult;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** Opens `path` and resolves with its status once the stream is ready (or refused), then drops it. */
function openAndDrop(pod: AbusePod, path: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const request = http.get(`${pod.base}${path}`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    });
    request.once("error", () => resolve(0));
    request.once("response", (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        response.once("end", () => resolve(response.statusCode ?? 0));
        return;
      }
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
        if (text.includes("event: ready")) {
          request.destroy();
          resolve(200);
        }
      });
      response.once("close", () => resolve(200));
    });
  });
}

function send(pod: AbusePod, method: string, path: string, token: string, body?: unknown) {
  return new Promise<number>((resolve) => {
    const request = http.request(`${pod.base}${path}`, {
      method,
      agent,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
    });
    request.once("error", () => resolve(0));
    request.once("response", (response) => {
      response.resume();
      response.once("end", () => resolve(response.statusCode ?? 0));
    });
    request.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Counts statuses: "N (429 ×a, 503 ×b)". */
class Tally {
  #n = 0;
  readonly #refused = new Map<number, number>();
  add(status: number): void {
    this.#n++;
    if (status >= 300 || status === 0) {
      this.#refused.set(status, (this.#refused.get(status) ?? 0) + 1);
    }
  }
  toString(): string {
    const refused = [...this.#refused].map(([s, n]) => `${s || "error"} ×${n}`).join(", ");
    return `${this.#n}${refused ? ` (${refused})` : ""}`;
  }
}

/**
 * Findings 1 and 2: one user opens streams on 16 fresh rooms and drops them once ready (16 at a
 * time), chats into fresh rooms, and (Redis) reads the presence of fresh rooms.
 */
export async function freshRooms(
  pod: AbusePod,
  signal: AbortSignal,
  options: { presenceReads: boolean },
): Promise<string> {
  const token = userToken("u_mallory");
  let room = 0;
  const opens = new Tally();
  const chats = new Tally();
  const reads = new Tally();
  const loop = async (step: () => Promise<void>) => {
    while (!signal.aborted) await step();
  };
  const workers = [
    ...Array.from({ length: 16 }, () =>
      loop(async () => {
        const query = Array.from({ length: 16 }, () => `channel=channel:fresh${++room}`).join("&");
        opens.add(await openAndDrop(pod, `/api/events?${query}`, token));
      }),
    ),
    loop(async () => {
      chats.add(
        await send(pod, "POST", "/api/chat/messages", token, {
          channel: `said${++room}`,
          content: "x".repeat(1_000),
        }),
      );
    }),
    ...(options.presenceReads
      ? Array.from({ length: 4 }, () =>
          loop(async () => {
            reads.add(await send(pod, "GET", `/api/channels/peek${++room}/presence`, token));
          }),
        )
      : []),
  ];
  await Promise.all(workers);
  return (
    `${opens} opens, ${chats} chats` +
    (options.presenceReads ? `, ${reads} presence reads` : "") +
    `; ${room} room names`
  );
}

const ROOMS = Array.from({ length: 16 }, (_, i) => `channel:busy${i}`);

/**
 * Finding 3: 16 busy rooms with 250 events of 4 KiB each; 8 users × 8 HTTP/1.1 streams resume
 * all 16 from before that history (16 MiB each) and never read. Dropped as slow clients after
 * `SLOW_CLIENT_MAX_STALL_MS`, they come straight back, as an attacker would.
 */
export const replayFlood = {
  async prepare(pod: AbusePod) {
    const channels = ROOMS.map((r) => `channel=${r}`).join("&");
    const cursor = await readyCursor(pod, `/api/events?${channels}`, userToken("u_0"));
    const publisher = publisherToken();
    const content = "x".repeat(4 * 1024);
    for (let n = 0; n < 250; n++) {
      await Promise.all(
        ROOMS.map((channel) =>
          send(pod, "POST", "/api/publish", publisher, {
            channel,
            event: { type: "bulk", content },
          }),
        ),
      );
    }
    const path = `/api/events?${channels}&lastEventId=${cursor}`;
    return {
      async run(signal: AbortSignal): Promise<string> {
        const connects = new Tally();
        const sockets = Array.from({ length: 64 }, (_, i) =>
          (async () => {
            while (!signal.aborted) {
              connects.add(await holdUnread(pod, path, userToken(`u_${i % 8}`), signal));
            }
          })(),
        );
        await Promise.all(sockets);
        return `${connects} resumes held unread`;
      },
    };
  },
};

async function readyCursor(pod: AbusePod, path: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(`${pod.base}${path}`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    });
    request.once("error", reject);
    request.once("response", (response) => {
      let text = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        text += chunk;
        const match = /event: ready\nid: (\S+)\n/.exec(text);
        if (match) {
          request.destroy();
          resolve(match[1] as string);
        }
      });
    });
  });
}

/** Opens a resume and never reads it; resolves with its status when the server drops it (or on abort). */
function holdUnread(pod: AbusePod, path: string, token: string, signal: AbortSignal) {
  return new Promise<number>((resolve) => {
    const request = http.get(`${pod.base}${path}`, {
      headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    });
    const abort = () => request.destroy();
    signal.addEventListener("abort", abort, { once: true });
    request.once("error", () => resolve(0));
    request.once("response", (response) => {
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        response.resume();
        response.once("end", () => resolve(status));
        return;
      }
      response.pause();
      response.once("close", () => {
        signal.removeEventListener("abort", abort);
        resolve(200);
      });
    });
  });
}
