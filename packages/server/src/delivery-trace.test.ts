/**
 * Publish→delivery latency and the delivery trace: measured once per event per pod, from the
 * time the broker was handed the event to the fan-out that wrote it, with the publish
 * request's id; nothing for events nobody here received.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelName } from "@realtime/protocol";
import type { Delivery } from "./fan-out.ts";
import { Hub } from "./hub.ts";
import { MemoryBroker, MemoryBus } from "./memory-broker.ts";
import { type Metrics, noopMetrics } from "./metrics.ts";
import { FakeConnection } from "./testing/fake-connection.ts";
import { dataEvents } from "./testing/parse-sse.ts";

const A = "channel:a" as ChannelName;
const B = "channel:b" as ChannelName;

/** Waits until the broker's deliveries (queued microtasks) and the fan-out have run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup() {
  // Two clocks: the publisher's (the bus stamps the live message) and this pod's.
  let published = 5_000_000;
  let here = 5_000_000;
  const bus = new MemoryBus({ now: () => published });
  const latencies: number[] = [];
  const deliveries: Delivery[] = [];
  const metrics: Metrics = {
    ...noopMetrics,
    deliveryLatency: (seconds) => latencies.push(seconds),
  };
  const hub = new Hub({
    broker: new MemoryBroker({ bus }),
    metrics,
    now: () => here,
    onDelivered: (delivery) => deliveries.push(delivery),
  });
  const connect = async (channels: ChannelName[]) => {
    const connection = new FakeConnection();
    await hub.open({ userId: "u_1", channels, cursor: null, connect: () => connection });
    return connection;
  };
  return {
    hub,
    connect,
    latencies,
    deliveries,
    clocks(publisher: number, pod: number) {
      published = publisher;
      here = pod;
    },
  };
}

describe("delivery latency and trace", () => {
  it("one observation per event, however many streams; with its request id", async () => {
    const { hub, connect, latencies, deliveries, clocks } = setup();
    const streams = await Promise.all([connect([A]), connect([A]), connect([A, B])]);
    clocks(1_000, 1_042);
    await hub.publish(A, { type: "n" }, { requestId: "req-1" });
    await hub.publish(A, { type: "n" });
    await settle();
    for (const connection of streams) assert.equal(dataEvents(connection.text).length, 2);
    assert.deepEqual(latencies, [0.042, 0.042]);
    assert.deepEqual(
      deliveries.map(({ channel, offset, requestId, latencyMs, streams }) => ({
        channel,
        offset,
        requestId,
        latencyMs,
        streams,
      })),
      [
        { channel: A, offset: 1, requestId: "req-1", latencyMs: 42, streams: 3 },
        { channel: A, offset: 2, requestId: undefined, latencyMs: 42, streams: 3 },
      ],
    );
    await hub.close();
  });

  it("the pod's clock behind the publisher's gives a negative figure, passed on as it is", async () => {
    const { hub, connect, latencies, deliveries, clocks } = setup();
    await connect([B]);
    clocks(2_000, 1_990);
    await hub.publish(B, { type: "n" });
    await settle();
    // The hook gets the skew; the Prometheus side decides what to count (it counts 0).
    assert.deepEqual(latencies, [-0.01]);
    assert.equal(deliveries[0]?.latencyMs, -10);
    await hub.close();
  });

  it("nothing is timed for a channel none of this pod's streams carries", async () => {
    const { hub, connect, latencies, deliveries } = setup();
    await connect([B]);
    await hub.publish(A, { type: "n" });
    await settle();
    assert.deepEqual(latencies, []);
    assert.deepEqual(deliveries, []);
    await hub.close();
  });
});
