/**
 * What a {@link StreamClient} recorded of one channel, and the check every multi-pod test
 * makes of it: the whole sequence gapless and in order per epoch, and exactly what the test
 * published, each once.
 */
export interface ReceivedEvent {
  readonly offset: number;
  readonly epochTag: string;
  /** The event's JSON, parsed. */
  readonly json: Record<string, unknown>;
}

export interface ChannelLog {
  /** Every application event of the channel (any `type`), in arrival order. */
  readonly events: ReceivedEvent[];
  /** `reset` reasons, in the order they came. */
  readonly resets: string[];
  /** For each reset, how many events had arrived before it (an index into `events`). */
  readonly resetAt: number[];
  /** The offset the client's first stream started after (its first id-only block), or null. */
  start: number | null;
}

/**
 * The position a channel's log is at (see {@link StreamClient.lastOffset}): the last event's
 * offset since the last reset, the start when no event and no reset came yet, else 0.
 */
export function positionOf(log: ChannelLog): number {
  const reset = log.resetAt.at(-1);
  if (reset === undefined) return log.events.at(-1)?.offset ?? log.start ?? 0;
  return log.events.length > reset ? (log.events.at(-1)?.offset ?? 0) : 0;
}

export interface ChannelCheck {
  /** Events of the checked type received. */
  readonly received: number;
  /** Events of the checked type published. */
  readonly expected: number;
  /** Events (any type) whose offset came before, in their epoch. */
  readonly duplicates: number;
  /** Events (any type) whose offset is below the one before them, in their epoch. */
  readonly outOfOrder: number;
  /**
   * Holes in the offsets (any type): the first event after the stream's start, or the first of
   * a new epoch at 1, and each next one at +1.
   */
  readonly gaps: number;
  /** Published events of the checked type never received. */
  readonly missing: number;
  /** Events of the checked type received but not published (by this test). */
  readonly extra: number;
  /** Events whose content is not what was published at their offset. */
  readonly wrongContent: number;
  readonly resets: readonly string[];
}

/**
 * Checks one channel of a client. The whole sequence, whatever the event types (other
 * features, e.g. presence, publish on the same channels), must be gapless and in order per
 * epoch. Then the events of `type` are compared with what the test published: `expected` maps
 * offset → the event's `message` (or is only the count, when positions are not known).
 */
export function checkChannel(
  log: ChannelLog,
  type: string,
  expected: ReadonlyMap<number, string> | number,
): ChannelCheck {
  let duplicates = 0;
  let outOfOrder = 0;
  let gaps = 0;
  let epoch: string | null = null;
  let previous = log.start ?? 0;
  let seen = new Set<number>();
  for (const event of log.events) {
    if (event.epochTag !== epoch) {
      if (epoch !== null) previous = 0; // a new epoch's history starts at 1
      epoch = event.epochTag;
      seen = new Set();
    }
    if (seen.has(event.offset)) duplicates++;
    else if (event.offset < previous) outOfOrder++;
    else if (event.offset !== previous + 1) gaps++;
    seen.add(event.offset);
    previous = Math.max(previous, event.offset);
  }
  const mine = log.events.filter((e) => e.json.type === type);
  let missing = 0;
  let extra = 0;
  let wrongContent = 0;
  if (typeof expected === "number") {
    missing = Math.max(0, expected - mine.length);
    extra = Math.max(0, mine.length - expected);
  } else {
    const got = new Map<number, ReceivedEvent>();
    for (const event of mine) got.set(event.offset, event);
    for (const [offset, message] of expected) {
      const event = got.get(offset);
      if (!event) missing++;
      else if (event.json.message !== message) wrongContent++;
    }
    for (const offset of got.keys()) if (!expected.has(offset)) extra++;
  }
  return {
    received: mine.length,
    expected: typeof expected === "number" ? expected : expected.size,
    duplicates,
    outOfOrder,
    gaps,
    missing,
    extra,
    wrongContent,
    resets: log.resets,
  };
}

/** The check's fields that must be zero (and no resets) for a perfect channel. */
export function perfect(check: ChannelCheck): ChannelCheck {
  return {
    ...check,
    duplicates: 0,
    outOfOrder: 0,
    gaps: 0,
    missing: 0,
    extra: 0,
    wrongContent: 0,
    resets: [],
  };
}
