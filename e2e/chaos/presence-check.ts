/**
 * Once the faults are over, every room's presence snapshot (`GET /api/channels/:room/presence`,
 * from any pod) must match who is connected — each user listed with exactly as many
 * connections as the run has streams of theirs open on the room, nobody else — within a
 * deadline. Crashed pods' users must have been reaped, frozen pods' rejoined, Redis restarted
 * empty rebuilt.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type H2Pool, type PodAddress, request } from "./http-client.ts";
import type { Subscriber } from "./subscriber.ts";

export interface PresenceResult {
  readonly ok: boolean;
  /** When every room matched (ms since the run started), or the last mismatch. */
  readonly at: number;
  readonly detail: string;
}

export async function checkPresence(options: {
  readonly rooms: readonly string[];
  readonly subscribers: readonly Subscriber[];
  readonly pods: () => readonly PodAddress[];
  readonly h2: H2Pool;
  readonly token: string;
  readonly clock: () => number;
  readonly deadline: number;
}): Promise<PresenceResult> {
  const { rooms, subscribers, h2, token, clock, deadline } = options;
  let round = 0;
  for (;;) {
    const mismatches: string[] = [];
    for (const room of rooms) {
      const pods = options.pods();
      const pod = pods[(round + rooms.indexOf(room)) % pods.length] as PodAddress;
      const answer = await request(pod, h2, {
        method: "GET",
        path: `/api/channels/${encodeURIComponent(room)}/presence`,
        headers: { authorization: `Bearer ${token}` },
        timeoutMs: 5_000,
      });
      // Who is connected, read after the answer: a stream that opened while the snapshot was
      // being read shows up in the next round.
      const expected = new Map<string, number>();
      for (const s of subscribers) {
        if (s.open && s.channels.includes(room)) {
          expected.set(s.userId, (expected.get(s.userId) ?? 0) + 1);
        }
      }
      if (answer.status !== 200) {
        mismatches.push(`${room}: ${answer.status} ${answer.body.slice(0, 200)}`);
        continue;
      }
      const snapshot = JSON.parse(answer.body) as {
        users: { userId: string; connections: number }[];
        truncated: boolean;
      };
      const listed = new Map(snapshot.users.map((u) => [u.userId, u.connections]));
      const same =
        !snapshot.truncated &&
        listed.size === expected.size &&
        [...expected].every(([user, n]) => listed.get(user) === n);
      if (!same) {
        mismatches.push(
          `${room}: snapshot ${JSON.stringify(Object.fromEntries(listed))}, connected ${JSON.stringify(Object.fromEntries(expected))}`,
        );
      }
    }
    const at = clock();
    if (mismatches.length === 0) return { ok: true, at, detail: "every room matches" };
    if (at > deadline) return { ok: false, at, detail: mismatches.join("; ") };
    round++;
    await sleep(500);
  }
}
