/**
 * Publishing for the scenarios: a fixed number of events as fast as the server takes them
 * (a bounded window of requests in flight), or a steady rate. Each event carries its sequence
 * number (per channel) and the moment it was handed to the socket.
 */
import { clientFor } from "./http-client.ts";
import type { Target } from "./servers.ts";
import { nowUs } from "./sse-parser.ts";

export interface PublishResult {
  sent: number;
  failed: number;
  /** Statuses other than 2xx, by code. */
  statuses: Record<number, number>;
  startUs: number;
  endUs: number;
}

function newResult(): PublishResult {
  return { sent: 0, failed: 0, statuses: {}, startUs: nowUs(), endUs: 0 };
}

function count(result: PublishResult, status: number): void {
  if (status >= 200 && status < 300) result.sent++;
  else {
    result.failed++;
    result.statuses[status] = (result.statuses[status] ?? 0) + 1;
  }
}

/**
 * Publishes `perChannel` events on each of `channels` channels, round-robin, with at most
 * `window` requests in flight. Bounded by `timeoutMs`.
 */
export async function publishBurst(
  target: Target,
  channels: number,
  perChannel: number,
  options: { window?: number; connections?: number; timeoutMs?: number } = {},
): Promise<PublishResult> {
  // One connection by default: pipelined requests reach the server in publish order.
  const client = clientFor(target, options.connections ?? 1);
  const result = newResult();
  const total = channels * perChannel;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let next = 0;
  await new Promise<void>((resolve) => {
    // Bounded even when the server stops answering.
    setTimeout(resolve, timeoutMs + 5_000).unref();
    let inflight = 0;
    let done = 0;
    const pump = () => {
      while (inflight < (options.window ?? 32) && next < total && Date.now() < deadline) {
        const channel = next % channels;
        const seq = Math.floor(next / channels) + 1;
        next++;
        inflight++;
        client.send(target.publish(channel, seq, nowUs())).then(
          (status) => settle(status),
          () => settle(0),
        );
      }
      if (inflight === 0) resolve();
    };
    const settle = (status: number) => {
      inflight--;
      done++;
      count(result, status);
      if (done >= total) resolve();
      else pump();
    };
    pump();
  });
  result.endUs = nowUs();
  client.close();
  return result;
}

/**
 * Publishes `rate` events/s on channel 0 for `seconds`, each sent at its scheduled moment
 * (drift-corrected), so latency is not hidden by batching on the publisher's side.
 */
export async function publishSteady(
  target: Target,
  rate: number,
  seconds: number,
  firstSeq = 1,
): Promise<PublishResult> {
  const client = clientFor(target, 1);
  const result = newResult();
  const total = Math.round(rate * seconds);
  const intervalMs = 1000 / rate;
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let seq = firstSeq; seq < firstSeq + total; seq++) {
    const due = start + (seq - firstSeq) * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push(
      client.send(target.publish(0, seq, nowUs())).then(
        (status) => count(result, status),
        () => count(result, 0),
      ),
    );
  }
  await Promise.race([Promise.all(pending), new Promise((resolve) => setTimeout(resolve, 10_000))]);
  result.endUs = nowUs();
  client.close();
  return result;
}

/** Waits until `check` says done, or nothing progressed for `idleMs`, or `maxMs` passed. */
export async function waitFor(
  progress: () => Promise<{ done: boolean; value: number }>,
  options: { idleMs: number; maxMs: number; pollMs?: number },
): Promise<boolean> {
  const start = Date.now();
  let last = -1;
  let lastChange = Date.now();
  for (let guard = 0; guard < 1_000_000; guard++) {
    const { done, value } = await progress();
    if (done) return true;
    if (value !== last) {
      last = value;
      lastChange = Date.now();
    }
    if (Date.now() - lastChange > options.idleMs || Date.now() - start > options.maxMs)
      return false;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
  }
  return false;
}

/**
 * Publishes on channel 0 as fast as the server answers, `window` requests in flight over
 * `connections` connections, for `seconds`. Returns what was accepted.
 */
export async function publishFor(
  target: Target,
  seconds: number,
  options: { window?: number; connections?: number } = {},
): Promise<PublishResult> {
  const client = clientFor(target, options.connections ?? 4);
  const result = newResult();
  const stopAt = performance.now() + seconds * 1000;
  let seq = 0;
  await new Promise<void>((resolve) => {
    setTimeout(resolve, seconds * 1000 + 10_000).unref();
    let inflight = 0;
    const pump = () => {
      while (inflight < (options.window ?? 64) && performance.now() < stopAt && seq < 10_000_000) {
        inflight++;
        client.send(target.publish(0, ++seq, nowUs())).then(
          (status) => settle(status),
          () => settle(0),
        );
      }
      if (inflight === 0) resolve();
    };
    const settle = (status: number) => {
      inflight--;
      count(result, status);
      pump();
    };
    pump();
  });
  result.endUs = nowUs();
  client.close();
  return result;
}
