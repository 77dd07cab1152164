/**
 * Two well-behaved users on the pod under attack: Carol says something in the lobby every
 * 250 ms (under the default chat limit of 50 per 10 s) and Bob, listening there, hears it.
 * Measures each message's round trip, how many posts were refused and how many accepted ones
 * never arrived.
 */
import http from "node:http";
import { Histogram } from "../histogram.ts";
import { userToken } from "../jwt.ts";
import type { AbusePod } from "./pod.ts";

export interface BystanderResult {
  /** Round trip post → delivered, in µs. */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Posts the pod refused (any status but 204). */
  readonly refused: number;
  /** Posts accepted and never delivered. */
  readonly lost: number;
}

export class Bystanders {
  readonly #pod: AbusePod;
  readonly #histogram = new Histogram();
  readonly #sentAt = new Map<string, bigint>();
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  readonly #request: http.ClientRequest;
  readonly #timer: NodeJS.Timeout;
  #seq = 0;
  #max = 0;
  #refused = 0;

  private constructor(pod: AbusePod, request: http.ClientRequest) {
    this.#pod = pod;
    this.#request = request;
    this.#timer = setInterval(() => void this.#post(), 250);
  }

  static async start(pod: AbusePod): Promise<Bystanders> {
    const request = http.get(`${pod.base}/api/events?channel=channel:lobby`, {
      headers: { authorization: `Bearer ${userToken("u_bob")}`, accept: "text/event-stream" },
    });
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      request.once("response", resolve);
      request.once("error", reject);
    });
    if (response.statusCode !== 200) throw new Error(`bystander stream: ${response.statusCode}`);
    const bystanders = new Bystanders(pod, request);
    let text = "";
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => {
      text += chunk;
      for (;;) {
        const match = /"content":"(c\d+)"/.exec(text);
        if (!match) break;
        bystanders.#received(match[1] as string);
        text = text.slice(match.index + match[0].length);
      }
    });
    return bystanders;
  }

  #received(content: string): void {
    const sentAt = this.#sentAt.get(content);
    if (sentAt === undefined) return;
    this.#sentAt.delete(content);
    const us = Number((process.hrtime.bigint() - sentAt) / 1000n);
    this.#histogram.record(us);
    this.#max = Math.max(this.#max, us);
  }

  async #post(): Promise<void> {
    const content = `c${++this.#seq}`;
    this.#sentAt.set(content, process.hrtime.bigint());
    const body = JSON.stringify({ channel: "lobby", content });
    await new Promise<void>((resolve) => {
      const request = http.request(`${this.#pod.base}/api/chat/messages`, {
        method: "POST",
        agent: this.#agent,
        headers: {
          authorization: `Bearer ${userToken("u_carol")}`,
          "content-type": "application/json",
        },
      });
      request.once("response", (response) => {
        if (response.statusCode !== 204) this.#refuse(content);
        response.resume();
        response.once("end", resolve);
      });
      request.once("error", () => {
        this.#refuse(content);
        resolve();
      });
      request.end(body);
    });
  }

  #refuse(content: string): void {
    if (this.#sentAt.delete(content)) this.#refused++;
  }

  /** Stops posting, gives the last messages 2 s to arrive, and reports. */
  async stop(): Promise<BystanderResult> {
    clearInterval(this.#timer);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    this.#request.destroy();
    this.#agent.destroy();
    return {
      p50: this.#histogram.percentile(0.5),
      p99: this.#histogram.percentile(0.99),
      max: this.#max,
      refused: this.#refused,
      lost: this.#sentAt.size,
    };
  }
}
