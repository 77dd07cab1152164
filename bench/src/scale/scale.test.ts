/**
 * The scale scenario's pure parts (how streams split over pods and rooms, the room schedule,
 * what each stream must receive, the goals' verdicts, the on-paper fleet), and a tiny run of
 * the real thing (2 pods on one Redis, 40 streams, 4 rooms) that must deliver every event once.
 * Correctness only, never a timing. Runs unpinned (BENCH_NO_PIN=1).
 */
process.env.BENCH_NO_PIN = "1";

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  BROADCAST_P99_GOAL_MS,
  broadcastChannel,
  FULL,
  fleetFor,
  phaseFirstSeq,
  ROOMS_P99_GOAL_MS,
  roomMessage,
  roomsMessagesPerRoom,
  splitStreams,
  verdict,
  wantedUpTo,
} from "./plan.ts";

describe("scale plan", () => {
  it("splits the streams over the pods in one numbering, every room equally full", () => {
    const split = splitStreams(FULL.streams, FULL.pods);
    assert.equal(split.length, 6);
    assert.deepEqual(
      split.map((s) => s.count),
      [16_667, 16_667, 16_667, 16_667, 16_666, 16_666],
    );
    for (let p = 1; p < split.length; p++) {
      const prev = split[p - 1] as { first: number; count: number };
      assert.equal(split[p]?.first, prev.first + prev.count);
    }
    // Stream g carries room g % rooms: 100 members each.
    const members = new Array<number>(FULL.rooms).fill(0);
    for (const s of split) {
      for (let g = s.first; g < s.first + s.count; g++) {
        members[g % FULL.rooms] = (members[g % FULL.rooms] as number) + 1;
      }
    }
    assert.ok(members.every((m) => m === 100));
    // Within the fd cap (20,000 per process) with room to spare, pods and generator workers.
    assert.ok(split.every((s) => s.count <= FULL.maxConnections && FULL.maxConnections < 20_000));
    assert.ok(Math.ceil(FULL.streams / FULL.workers) <= 9_500);
  });

  it("publishes each room at its rate, in order, after the burst's and earlier phases' numbers", () => {
    const size = {
      burst: 10,
      roomPhases: [
        { rate: 0.5, seconds: 4 },
        { rate: 1, seconds: 3 },
      ],
    };
    assert.equal(broadcastChannel(4), 4);
    assert.equal(roomsMessagesPerRoom(size.roomPhases[0]), 2);
    assert.equal(phaseFirstSeq(size, 0), 11);
    assert.equal(phaseFirstSeq(size, 1), 13);
    const messages = Array.from({ length: 12 }, (_, i) => roomMessage(i, 4, 13, 1));
    assert.deepEqual(
      messages.map((m) => m.room),
      [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3],
    );
    assert.deepEqual(
      messages.filter((m) => m.room === 2).map((m) => [m.seq, m.dueMs]),
      [
        [13, 500],
        [14, 1500],
        [15, 2500],
      ],
    );
    // At half a message a second, each room every 2 s.
    assert.equal(roomMessage(5, 4, 11, 0.5).dueMs, 2500);
  });

  it("wants each room's acknowledged messages, from the phase's first number", () => {
    assert.deepEqual(wantedUpTo(13, [3, 0, 2]), [15, 12, 14]);
  });

  it("meets a goal only within its bound and with no loss", () => {
    const ok = {
      broadcastP99Ms: BROADCAST_P99_GOAL_MS,
      broadcastLoss: 0,
      roomsP99Ms: ROOMS_P99_GOAL_MS,
      roomsLoss: 0,
    };
    assert.deepEqual(verdict(ok), { broadcast: "met", rooms: "met" });
    assert.deepEqual(
      verdict({ ...ok, broadcastP99Ms: BROADCAST_P99_GOAL_MS + 1 }).broadcast,
      "missed",
    );
    assert.deepEqual(verdict({ ...ok, broadcastLoss: 1 }).broadcast, "missed");
    assert.deepEqual(verdict({ ...ok, roomsLoss: 1 }).rooms, "missed");
    assert.deepEqual(verdict({ ...ok, roomsP99Ms: null }).rooms, "n/a");
  });

  it("sizes a fleet from per-pod figures", () => {
    const fleet = fleetFor(1_000_000, {
      streamsPerPod: 20_000,
      rssPerStreamBytes: 25 * 1024,
      podBaseBytes: 100 * 2 ** 20,
      eventWireBytes: 250,
      deliveriesPerCoreSecond: 100_000,
    });
    assert.equal(fleet.pods, 50);
    // 50 × 100 MiB + 1M × 25 KiB = 4.88 + 23.84 GiB
    assert.equal(fleet.memoryGiB, 28.7);
    // 1M × 250 B × 10 events × 8 bit = 20 Gbit
    assert.equal(fleet.burstGbit, 20);
    assert.equal(fleet.coreSecondsPerEvent, 10);
    assert.equal(fleet.secondsPerEventAllPods, 0.2);
  });
});

describe("a tiny scale run against the real service", { timeout: 120_000 }, async () => {
  const { Generator } = await import("../generator.ts");
  const { scaleRun } = await import("./run.ts");
  let gen: ReturnType<typeof Generator.start>;
  const lines: string[] = [];
  before(() => {
    gen = Generator.start(1);
  });
  after(async () => {
    await gen?.stop();
  });

  it("2 pods on one Redis, 40 streams in 4 rooms: every event once, nothing refused", async () => {
    const size = {
      pods: 2,
      streams: 40,
      rooms: 4,
      burst: 3,
      roomPhases: [{ rate: 1, seconds: 1 }],
      workers: 1,
      maxConnections: 100,
      warm: false,
    };
    const v = await scaleRun(
      {
        quick: true,
        servers: ["realtime"],
        gen,
        log: (line) => lines.push(line),
        record: () => {},
        profileDir: undefined,
      },
      size,
      "redis",
    );
    assert.ok(v, lines.join("\n"));
    assert.equal(v.streams, 40);
    assert.equal(v.refused, 0);
    assert.equal(v.openFailed, 0);
    assert.equal(v.burstDeliveries, 40 * 3);
    assert.equal(v.burstLoss, 0);
    assert.equal(v.rooms1Acked, 4);
    assert.equal(v.rooms1PublishFailed, 0);
    assert.equal(v.rooms1Deliveries, 40);
    assert.equal(v.rooms1Loss, 0);
    assert.equal(v.closedEarly, 0);
    assert.equal(v.stillOpen, 40);
    assert.ok(typeof v.redisUsedMbOpen === "number");
  });
});
