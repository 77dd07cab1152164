import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import type { BrokerMessage } from "./broker.ts";
import { ChannelSequencer } from "./channel-sequencer.ts";

const msg = (offset: number, epoch = "e1"): BrokerMessage => ({
  channel: "channel:x" as ChannelName,
  epoch,
  offset,
  data: `{"n":${offset}}`,
});
const offsets = (list: readonly BrokerMessage[]) => list.map((m) => m.offset);

describe("ChannelSequencer", () => {
  it("releases contiguous messages at once and drops duplicates", () => {
    const s = new ChannelSequencer();
    s.start("e1", 4);
    assert.deepEqual(offsets(s.receive(msg(5)).ready), [5]);
    assert.deepEqual(offsets(s.receive(msg(5)).ready), []);
    assert.deepEqual(offsets(s.receive(msg(3)).ready), []);
    assert.deepEqual(offsets(s.receive(msg(6)).ready), [6]);
    assert.equal(s.top, 6);
  });

  it("holds back after a hole, asks for exactly the hole, then releases in order", () => {
    const s = new ChannelSequencer();
    s.start("e1", 1);
    const out = s.receive(msg(4));
    assert.deepEqual(out.ready, []);
    assert.deepEqual(out.fetch, { after: 1, until: 3 });
    assert.deepEqual(s.receive(msg(6)), { ready: [] }, "held while fetching; no second fetch");
    assert.deepEqual(offsets(s.receive(msg(5)).ready), []);
    const done = s.filled([msg(2), msg(3)]);
    assert.deepEqual(offsets(done.ready), [2, 3, 4, 5, 6]);
    assert.equal(done.fetch, undefined);
    assert.equal(s.fetching, false);
  });

  it("fetches again when history filled one hole and another remains behind it", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    s.receive(msg(3)); // hole 1..2
    s.receive(msg(6)); // held; hole 4..5 behind it
    const out = s.filled([msg(1), msg(2)]);
    assert.deepEqual(offsets(out.ready), [1, 2, 3]);
    assert.deepEqual(out.fetch, { after: 3, until: 5 });
    assert.deepEqual(offsets(s.filled([msg(4), msg(5)]).ready), [4, 5, 6]);
  });

  it("releases a hole history cannot fill instead of waiting forever", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    s.receive(msg(5));
    const out = s.filled([]);
    assert.deepEqual(offsets(out.ready), [5]);
    assert.equal(s.fetching, false);
    assert.deepEqual(offsets(s.receive(msg(6)).ready), [6]);
  });

  it("asks for the tail when the broker is ahead (a lost last message)", () => {
    const s = new ChannelSequencer();
    s.start("e1", 2);
    s.receive(msg(3));
    assert.deepEqual(s.observe("e1", 3), { ready: [] });
    assert.deepEqual(s.observe("e1", 5).fetch, { after: 3, until: 5 });
    assert.deepEqual(offsets(s.filled([msg(4), msg(5)]).ready), [4, 5]);
  });

  it("follows a new epoch: the old positions mean nothing any more", () => {
    const s = new ChannelSequencer();
    s.start("e1", 9);
    assert.deepEqual(offsets(s.receive(msg(1, "e2")).ready), [1]);
    assert.equal(s.epoch, "e2");
    assert.deepEqual(offsets(s.receive(msg(2, "e2")).ready), [2]);
    const t = new ChannelSequencer();
    t.start("e1", 9);
    assert.deepEqual(t.observe("e2", 2).fetch, { after: 0, until: 2 });
  });

  it("fills a new epoch from offset 1 when its first live message is further on", () => {
    const s = new ChannelSequencer();
    s.start("e1", 9);
    // e2:1 and e2:2 were published before this pod's subscriber came back.
    const first = s.receive(msg(3, "e2"));
    assert.deepEqual(first, { ready: [], fetch: { after: 0, until: 2 } });
    assert.equal(s.epoch, "e2");
    assert.deepEqual(offsets(s.filled([msg(1, "e2"), msg(2, "e2")]).ready), [1, 2, 3]);
  });

  it("ignores a fetch that an epoch change made stale", () => {
    const s = new ChannelSequencer();
    s.start("e1", 1);
    assert.deepEqual(s.receive(msg(4)).fetch, { after: 1, until: 3 });
    const stale = s.generation;
    assert.deepEqual(s.receive(msg(3, "e2")).fetch, { after: 0, until: 2 });
    const current = s.generation;
    // The old epoch's fetch comes back (empty: its history is gone) and must not release e2:3
    // past the hole the new fetch is filling.
    assert.deepEqual(s.filled([], stale), { ready: [] });
    assert.deepEqual(offsets(s.filled([msg(1, "e2"), msg(2, "e2")], current).ready), [1, 2, 3]);
  });

  it("ignores fetched messages of another epoch", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    s.receive(msg(2));
    assert.deepEqual(offsets(s.filled([msg(1, "old")]).ready), [2]);
  });
  it("asks for a rebase when the broker is below what it released in the same epoch", () => {
    const s = new ChannelSequencer();
    s.start("e1", 10);
    assert.deepEqual(s.observe("e1", 7), { ready: [], rebase: { epoch: "e1", offset: 10 } });
    assert.equal(s.top, 10, "nothing changes until the broker answers");
    // The broker moved the channel to a new epoch: follow it, fetch what it already has.
    assert.deepEqual(s.observe("e2", 2).fetch, { after: 0, until: 2 });
    assert.equal(s.epoch, "e2");
  });
  it("does not take live messages that overtook the position's answer for a regression", () => {
    const s = new ChannelSequencer();
    s.start("e1", 10);
    const asked = { epoch: s.epoch, top: s.top };
    // While the position request was on its way, 11 and 12 arrived live.
    assert.deepEqual(offsets(s.receive(msg(11)).ready), [11]);
    assert.deepEqual(offsets(s.receive(msg(12)).ready), [12]);
    // The answer (11) is older than the top now, but not below what was released when asked.
    assert.deepEqual(s.observe("e1", 11, asked), { ready: [] });
    assert.equal(s.top, 12);
    // Below what was released when asked: a real regression.
    assert.deepEqual(s.observe("e1", 9, asked).rebase, { epoch: "e1", offset: 10 });
  });
});

describe("ChannelSequencer: a broker that went back and was published past where it was", () => {
  const other = (offset: number): BrokerMessage => ({
    ...msg(offset),
    data: `{"other":${offset}}`,
  });

  it("a repeat with the same data is a duplicate; with other data it asks for a conflict rebase", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 5; i++) s.receive(msg(i));
    assert.deepEqual(s.receive(msg(4)), { ready: [] }, "a backfill overlap: nothing");
    assert.deepEqual(s.receive(other(4)), {
      ready: [],
      rebase: { epoch: "e1", offset: 5, conflict: true },
    });
    assert.equal(s.differsAt(5, msg(5).data), false);
    assert.equal(s.differsAt(5, other(5).data), true);
  });

  it("remembers only the current epoch's last offsets", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 100; i++) s.receive(msg(i));
    assert.equal(s.differsAt(10, other(10).data), false, "too old to tell");
    assert.equal(s.differsAt(99, other(99).data), true);
    s.receive(msg(1, "e2"));
    assert.equal(s.differsAt(99, other(99).data), false, "a new epoch forgets the old");
  });

  it("resume never releases past a hole: it asks for the hole first", () => {
    const s = new ChannelSequencer();
    s.start("e1", 2);
    s.pause();
    s.receive(msg(5));
    s.receive(msg(6));
    assert.deepEqual(s.resume(), { ready: [], fetch: { after: 2, until: 4 } });
    assert.deepEqual(offsets(s.filled([msg(3), msg(4)]).ready), [3, 4, 5, 6]);
  });

  it("while paused, live messages are held; resume releases them in order and asks for a hole", () => {
    const s = new ChannelSequencer();
    s.start("e1", 2);
    s.pause();
    assert.deepEqual(s.receive(msg(3)).ready, []);
    assert.deepEqual(s.receive(msg(5)).ready, []);
    const out = s.resume();
    assert.deepEqual(offsets(out.ready), [3]);
    assert.deepEqual(out.fetch, { after: 3, until: 4 });
    assert.deepEqual(offsets(s.filled([msg(4)]).ready), [4, 5]);
  });
});

describe("ChannelSequencer: two histories in one epoch (a master that woke after its failover)", () => {
  const by = (life: string, offset: number, data = `{"n":${offset}}`): BrokerMessage => ({
    ...msg(offset),
    life,
    data,
  });

  it("another life at a released offset is a conflict, however far back (beyond the fingerprints)", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 100; i++) s.receive(by("aaaaaaaa", i));
    // The promoted replica's writes: the same life as before would be a repeat.
    assert.deepEqual(s.receive(by("aaaaaaaa", 10)), { ready: [] });
    // The frozen master's late writes at offsets the pod released from the replica's history —
    // even with the same data (the same event retried lands on both at one offset).
    assert.deepEqual(s.receive(by("bbbbbbbb", 10)), {
      ready: [],
      rebase: { epoch: "e1", offset: 100, conflict: true },
    });
    assert.equal(s.differsAt(10, `{"n":10}`, "bbbbbbbb"), true);
  });

  it("a promoted replica continues the history: lives change forward, the past keeps its own", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 40; i++) s.receive(by("aaaaaaaa", i));
    // A new life past the top: first the broker's history at the top must be checked.
    assert.deepEqual(s.receive(by("cccccccc", 41)), {
      ready: [],
      fetch: { after: 40, until: 41, life: "cccccccc" },
    });
    assert.deepEqual(
      offsets(s.filled([by("aaaaaaaa", 40), by("cccccccc", 41)]).ready),
      [41],
      "the same history",
    );
    for (let i = 42; i <= 80; i++) s.receive(by("cccccccc", i));
    assert.deepEqual(offsets(s.receive(by("cccccccc", 81)).ready), [81], "the new life goes on");
    assert.equal(s.differsAt(5, `{"n":5}`, "aaaaaaaa"), false, "a backfill of the old life's part");
    assert.equal(s.differsAt(60, `{"n":60}`, "cccccccc"), false);
    assert.equal(s.differsAt(60, `{"n":60}`, "aaaaaaaa"), true, "the old master's late write");
    assert.equal(s.differsAt(5, `{"n":5}`, "cccccccc"), true);
    assert.equal(s.differsAt(5, `{"n":5}`), false, "no life (the memory broker): data only");
  });

  it("the zombie's writes first, then the replica's at the same offsets: a conflict too", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 3; i++) s.receive(by("aaaaaaaa", i));
    for (let i = 4; i <= 60; i++) s.receive(by("aaaaaaaa", i, `{"zombie":${i}}`));
    assert.deepEqual(s.receive(by("cccccccc", 4)), {
      ready: [],
      rebase: { epoch: "e1", offset: 60, conflict: true },
    });
  });

  it("a new life past the top whose history holds another event at the top: a conflict", () => {
    // Found by `npm run chaos -- --redis-cluster` (seed 2405): this pod released three late
    // writes of the woken master (its own life) past where the replica took over; the replica's
    // next events came past them, and their history at 1–3 held other events.
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 3; i++) s.receive(by("aaaaaaaa", i, `{"zombie":${i}}`));
    assert.deepEqual(s.receive(by("cccccccc", 9)), {
      ready: [],
      fetch: { after: 3, until: 9, life: "cccccccc" },
    });
    const history = [3, 4, 5, 6, 7, 8, 9].map((i) => by("cccccccc", i));
    assert.deepEqual(s.filled(history), {
      ready: [],
      rebase: { epoch: "e1", offset: 3, conflict: true },
    });
    assert.equal(s.fetching, false, "the rebase's answer is observed next");
    assert.deepEqual(s.observe("e2", 0), { ready: [] });
    assert.equal(s.epoch, "e2");
  });

  it("held messages are checked as they are released: another history, or a new life", () => {
    // The woken master's 5–8 are held while a fetch reads the replica's 3–6: the replica's
    // history wins up to 6, and the held 5–6 are of another history — a conflict.
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 2; i++) s.receive(by("aaaaaaaa", i));
    assert.deepEqual(s.receive(by("aaaaaaaa", 7, `{"zombie":7}`)).fetch, {
      after: 2,
      until: 6,
      life: "aaaaaaaa",
    });
    for (const i of [5, 6, 8]) s.receive(by("aaaaaaaa", i, `{"zombie":${i}}`));
    const out = s.filled([3, 4, 5, 6].map((i) => by("cccccccc", i)));
    assert.deepEqual(offsets(out.ready), [3, 4, 5, 6]);
    assert.deepEqual(out.rebase, { epoch: "e1", offset: 6, conflict: true });

    // Paused while the live path came back: a held message of a new life waits for history.
    const p = new ChannelSequencer();
    p.start("e1", 0);
    for (let i = 1; i <= 3; i++) p.receive(by("aaaaaaaa", i, `{"zombie":${i}}`));
    p.pause();
    p.receive(by("cccccccc", 4));
    assert.deepEqual(p.resume(), {
      ready: [],
      fetch: { after: 3, until: 4, life: "cccccccc" },
    });
    assert.deepEqual(p.filled([by("cccccccc", 3), by("cccccccc", 4)]), {
      ready: [],
      rebase: { epoch: "e1", offset: 3, conflict: true },
    });
  });

  it("a new life history cannot vouch for (it does not reach it yet) is checked once, then released", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 3; i++) s.receive(by("aaaaaaaa", i));
    assert.deepEqual(s.receive(by("cccccccc", 4)).fetch, {
      after: 3,
      until: 4,
      life: "cccccccc",
    });
    assert.deepEqual(offsets(s.filled([by("aaaaaaaa", 3)]).ready), [4], "not asked again");
    assert.equal(s.fetching, false);
  });

  it("unverified: a new life at the top is a conflict; a hole is released as a hole", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 3; i++) s.receive(by("aaaaaaaa", i));
    assert.deepEqual(s.receive(by("cccccccc", 4)).fetch, {
      after: 3,
      until: 4,
      life: "cccccccc",
    });
    assert.deepEqual(s.unverified(), {
      ready: [],
      rebase: { epoch: "e1", offset: 3, conflict: true },
    });
    assert.equal(s.fetching, false);

    const h = new ChannelSequencer();
    h.start("e1", 0);
    h.receive(by("aaaaaaaa", 1));
    assert.deepEqual(h.receive(by("aaaaaaaa", 3)).fetch, { after: 1, until: 2, life: "aaaaaaaa" });
    assert.deepEqual(offsets(h.unverified().ready), [3], "past the hole: the streams reset it");
    assert.equal(h.fetching, false);
  });

  it("a fetch's first entry, at the top it asked after, must be what was released there", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    s.receive(msg(1));
    s.receive(msg(2));
    assert.deepEqual(s.receive(msg(5)), { ready: [], fetch: { after: 2, until: 4 } });
    assert.deepEqual(offsets(s.filled([msg(2), msg(3), msg(4)]).ready), [3, 4, 5]);
    assert.deepEqual(s.receive(msg(8)), { ready: [], fetch: { after: 5, until: 7 } });
    assert.deepEqual(s.filled([{ ...msg(5), data: "{}" }, msg(6), msg(7)]), {
      ready: [],
      rebase: { epoch: "e1", offset: 5, conflict: true },
    });
  });

  it("a new epoch forgets the lives of the old one", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    for (let i = 1; i <= 5; i++) s.receive(by("aaaaaaaa", i));
    s.receive({ ...by("cccccccc", 1), epoch: "e2" });
    assert.equal(s.epoch, "e2");
    assert.equal(s.differsAt(1, `{"n":1}`, "dddddddd"), true, "the new epoch's own offset 1");
    assert.equal(s.differsAt(3, `{"n":3}`, "dddddddd"), false, "nothing known of e2's offset 3");
  });
});

describe("ChannelSequencer: an epoch it left never comes back", () => {
  it("drops a late live message of an epoch it left", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    assert.equal(s.receive(msg(1, "e1")).ready.length, 1);
    assert.equal(s.receive(msg(1, "e2")).ready.length, 1, "moves on to e2");
    assert.equal(s.isRetired("e1"), true);
    assert.deepEqual(s.receive(msg(2, "e1")), { ready: [] }, "e1 is over");
    assert.equal(s.epoch, "e2");
    assert.deepEqual(s.observe("e1", 5, { epoch: "e1", top: 1 }), { ready: [] }, "a late answer");
    assert.equal(s.epoch, "e2");
  });

  it("a broker that really went back to an epoch it left is moved on, not ignored", () => {
    const s = new ChannelSequencer();
    s.start("e1", 0);
    s.receive(msg(1, "e2"));
    assert.deepEqual(s.observe("e1", 9, { epoch: "e2", top: 1 }), {
      ready: [],
      rebase: { epoch: "e1", offset: 9, conflict: true },
    });
    assert.deepEqual(s.observe("e1", 9, { epoch: "e1", top: 1 }), { ready: [] }, "a late answer");
  });

  it("follows another epoch a joining stream read, when its own stayed current meanwhile", () => {
    const s = new ChannelSequencer();
    s.start("e1", 3);
    assert.deepEqual(s.start("e2", 2, "e1"), { ready: [], fetch: { after: 0, until: 2 } });
    assert.equal(s.epoch, "e2");
    assert.deepEqual(s.receive(msg(4, "e1")), { ready: [] }, "the old epoch's tail: stale");
  });

  it("ignores another epoch read while its own changed (the read may be the older one)", () => {
    const s = new ChannelSequencer();
    s.start("e1", 3);
    s.receive(msg(1, "e2"));
    assert.deepEqual(s.start("e3", 7, "e1"), { ready: [] });
    assert.equal(s.epoch, "e2");
  });
});
