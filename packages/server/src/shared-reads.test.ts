/**
 * The coalescing of `shared-reads.ts`: a request never joins a read already under way; the
 * requests made meanwhile share the next read, started when that one settles.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName, StreamPosition } from "@realtime/protocol";
import type { Broker } from "./broker.ts";
import type { HistoryPage } from "./history-store.ts";
import { SharedHistory, SharedPositions } from "./shared-reads.ts";

const A = "channel:a" as ChannelName;
const B = "channel:b" as ChannelName;

/** A broker whose position reads settle when the test says. */
function manualBroker() {
  const reads: {
    channel: ChannelName;
    resolve: (p: StreamPosition) => void;
    reject: (e: Error) => void;
  }[] = [];
  let throwing = false;
  const broker = {
    position(channel: ChannelName): Promise<StreamPosition> {
      if (throwing) throw new Error("thrown");
      return new Promise((resolve, reject) => reads.push({ channel, resolve, reject }));
    },
  } as unknown as Broker;
  return {
    broker,
    reads,
    throwNext(on: boolean) {
      throwing = on;
    },
  };
}

const at = (offset: number): StreamPosition => ({ epoch: "e", offset });
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("shared reads", () => {
  it("requests made while a read is under way share the next read, which starts after it settles", async () => {
    const { broker, reads } = manualBroker();
    const positions = new SharedPositions(broker);
    const first = positions.position(A);
    assert.equal(reads.length, 1, "nothing in flight: read at once");
    const second = positions.position(A);
    const third = positions.position(A);
    const other = positions.position(B);
    assert.equal(reads.length, 2, "A's later requests wait; B reads at once");
    reads[0]?.resolve(at(1));
    assert.deepEqual(await first, at(1));
    await flush();
    assert.equal(reads.length, 3, "the next read of A starts once the first settled");
    assert.equal(reads[2]?.channel, A);
    reads[2]?.resolve(at(2));
    assert.deepEqual(await second, at(2), "an answer from a read begun after the request");
    assert.deepEqual(await third, at(2));
    reads[1]?.resolve(at(7));
    assert.deepEqual(await other, at(7));
    await flush();
    assert.equal(reads.length, 3, "no read left over");
    const last = positions.position(A);
    assert.equal(reads.length, 4, "idle again: the next request reads at once");
    reads[3]?.resolve(at(5));
    assert.deepEqual(await last, at(5));
  });

  it("a failed read fails those it serves only; a reader that throws leaves nothing stuck", async () => {
    const { broker, reads, throwNext } = manualBroker();
    const positions = new SharedPositions(broker);
    const first = positions.position(A);
    const second = positions.position(A);
    reads[0]?.reject(new Error("redis is away"));
    await assert.rejects(first, /redis is away/);
    await flush();
    reads[1]?.resolve(at(3));
    assert.deepEqual(await second, at(3));
    throwNext(true);
    await assert.rejects(positions.position(A), /thrown/);
    throwNext(false);
    const again = positions.position(A);
    assert.equal(reads.length, 3);
    reads[2]?.resolve(at(4));
    assert.deepEqual(await again, at(4));
  });

  it("history: one read of the largest page asked for; each request gets at most its limit", async () => {
    const asked: number[] = [];
    const pending: (() => void)[] = [];
    const messages = [1, 2, 3, 4, 5].map((offset) => ({
      channel: A,
      epoch: "e",
      offset,
      data: "{}",
    }));
    const history = new SharedHistory({
      read(_channel, after, limit): Promise<HistoryPage> {
        asked.push(limit);
        return new Promise((resolve) => {
          pending.push(() =>
            resolve({
              epoch: "e",
              top: 5,
              messages: messages.filter((m) => m.offset > after).slice(0, limit),
            }),
          );
        });
      },
    });
    const first = history.read(A, 0, 1);
    const small = history.read(A, 0, 2);
    const large = history.read(A, 0, 4);
    const elsewhere = history.read(A, 3, 4);
    assert.deepEqual(asked, [1, 4]);
    pending[0]?.();
    assert.equal((await first).messages.length, 1);
    await flush();
    assert.deepEqual(asked, [1, 4, 4], "the waiting two: one read of 4");
    pending[2]?.();
    assert.deepEqual(
      (await small).messages.map((m) => m.offset),
      [1, 2],
    );
    assert.deepEqual(
      (await large).messages.map((m) => m.offset),
      [1, 2, 3, 4],
    );
    pending[1]?.();
    assert.deepEqual(
      (await elsewhere).messages.map((m) => m.offset),
      [4, 5],
    );
  });
});
