/**
 * A running service exercised so that its labelled and histogram series have samples, then
 * scraped: what the dashboard and alert tests read, so that they check the series a real pod
 * exports, not only the names it declares.
 */
import { ofType, openStream, request, until } from "./http.ts";
import { type RunningService, startService } from "./service.ts";

/** The settings {@link exercisedService} starts with: history reads limited to 1 per window. */
export const EXERCISE_ENV: Readonly<Record<string, string>> = {
  RATE_LIMIT_HISTORY_MAX: "1",
};

/** One sample of a scrape: its metric name, labels (as rendered) and value. */
export interface Sample {
  readonly name: string;
  readonly labels: string;
  readonly value: number;
}

/** The samples of Prometheus text. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (match) {
      samples.push({ name: match[1] as string, labels: match[2] ?? "", value: Number(match[3]) });
    }
  }
  return samples;
}

/** The text of `GET /metrics` of `svc` (wherever it serves it). */
export async function scrape(svc: RunningService): Promise<string> {
  const reply = await request(`${svc.metricsUrl ?? svc.url}/metrics`);
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}`);
  return reply.text;
}

/**
 * Does what a pod does in a day, on `svc`: two streams opened (one resuming with a cursor the
 * pod cannot read, so it is sent a `reset`), an event published and delivered to both, the
 * streams closed by their clients, a stream refused (no token),
 * answered and unmatched HTTP requests, a request refused by a rate limit
 * ({@link EXERCISE_ENV}). Resolves once the service has counted all of it.
 */
export async function exercise(svc: RunningService): Promise<void> {
  const { token } = await svc.login("Exercise");
  const auth = { authorization: `Bearer ${token}` };
  const url = `${svc.url}/api/events?channel=channel:exercise`;
  const streams = [
    await openStream(url, auth),
    await openStream(url, { ...auth, "last-event-id": "from-another-deployment" }),
  ];
  try {
    for (const stream of streams) {
      if (stream.status !== 200) throw new Error(`stream: ${stream.status}`);
    }
    const posted = await svc.post("/api/chat/messages", token, {
      channel: "exercise",
      content: "counted",
    });
    if (posted.status !== 204) throw new Error(`chat: ${posted.status}`);
    for (const stream of streams) await stream.waitFor(ofType("chat"));
    await streams[1]?.waitFor((e) => e.event === "reset");
  } finally {
    for (const stream of streams) stream.close();
  }
  const refused = await openStream(url);
  await refused.ended;
  if (refused.status !== 401) throw new Error(`refused stream: ${refused.status}`);
  await request(`${svc.url}/healthz`);
  await request(`${svc.url}/no/such/path`);
  const history = `${svc.url}/api/channels/channel:exercise/messages`;
  await request(history, { headers: auth });
  const limited = await request(history, { headers: auth });
  if (limited.status !== 429) throw new Error(`history past its limit: ${limited.status}`);
  await until(
    async () => /^realtime_streams 0$/m.test(await scrape(svc)),
    "the closed streams counted",
  );
}

/** A fresh service ({@link EXERCISE_ENV} and `env`), exercised; stop it when done. */
export async function exercisedService(env: Record<string, string> = {}): Promise<RunningService> {
  const svc = await startService({ ...EXERCISE_ENV, ...env });
  try {
    await exercise(svc);
    return svc;
  } catch (error) {
    await svc.stop();
    throw error;
  }
}
