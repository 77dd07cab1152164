/**
 * A product backend for `AUTHZ_URL` on loopback: a real HTTP server that answers the pods'
 * `POST { userId, channel, action }` by rules the test sets, and records every question.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

/** How the backend answers a question: an HTTP status, or `hang` (never answers). */
export type AuthzAnswer = number | "hang";

export interface AuthzQuestion {
  readonly userId: string;
  readonly channel: string;
  readonly action: string;
}

export interface TestAuthz {
  /** The URL to give `AUTHZ_URL`. */
  readonly url: string;
  /** Every question asked so far, in order. */
  readonly asked: AuthzQuestion[];
  /** The most questions that were being answered at once (hanging ones included). */
  readonly maxInFlight: number;
  /** Answers `answer` to `action` by `userId` on `channel` from now on. */
  set(userId: string, channel: string, action: string, answer: AuthzAnswer): void;
  /** Resolves once a question matching `match` arrives after this call (or rejects after `timeoutMs`). */
  nextQuestion(match: (q: AuthzQuestion) => boolean, timeoutMs?: number): Promise<AuthzQuestion>;
  stop(): Promise<void>;
}

/** Starts the backend; a question without a rule is answered `fallback` (default 404: no rule). */
export async function startAuthz(fallback: AuthzAnswer = 404): Promise<TestAuthz> {
  const rules = new Map<string, AuthzAnswer>();
  const asked: AuthzQuestion[] = [];
  const waiters = new Set<(q: AuthzQuestion) => void>();
  const hanging = new Set<http.ServerResponse>();
  const key = (q: AuthzQuestion) => `${q.action} ${q.userId} ${q.channel}`;
  let inFlight = 0;
  let maxInFlight = 0;
  const server = http.createServer((req, res) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.once("close", () => inFlight--);
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => {
      let question: AuthzQuestion;
      try {
        question = JSON.parse(body) as AuthzQuestion;
      } catch {
        res.writeHead(400).end();
        return;
      }
      asked.push(question);
      for (const waiter of [...waiters]) waiter(question);
      const answer = rules.get(key(question)) ?? fallback;
      if (answer === "hang") {
        hanging.add(res);
        res.once("close", () => hanging.delete(res));
        return;
      }
      res.writeHead(answer, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/authorize`,
    asked,
    get maxInFlight() {
      return maxInFlight;
    },
    set(userId, channel, action, answer) {
      rules.set(key({ userId, channel, action }), answer);
    },
    nextQuestion(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const waiter = (q: AuthzQuestion) => {
          if (!match(q)) return;
          waiters.delete(waiter);
          clearTimeout(timer);
          resolve(q);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching AUTHZ question within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async stop() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
