/**
 * Reads a channel's history together with its epoch and top offset, atomically (one script on
 * the channel's slot), so a reader never pairs events of one epoch with the top of another.
 */
import type { ChannelName } from "@realtime/protocol";
import type { BrokerMessage, HistoryPage } from "@realtime/server";
import { readLua, script } from "./lua.ts";
import type { ScriptClient } from "./publish-script.ts";
import type { ChannelKeys } from "./redis-keys.ts";

/**
 * `lua/history.lua`. KEYS: 1 meta hash, 2 history stream. ARGV: 1 first offset wanted, 2 count.
 * Returns {epoch or "", top offset, XRANGE entries, life, previous life}. A missing meta hash
 * means the channel has no history in any epoch the caller could know: epoch "" never matches a
 * cursor. The lives are the first 8 hex digits of the answering Redis's `master_replid` and
 * `master_replid2` (all zeros when it took over from no one): whose history this is.
 */
export const HISTORY_SCRIPT = readLua("history.lua");

/** `master_replid2` of a Redis that took over from no one. */
const NO_LIFE = "00000000";

const { sha: SHA } = script(HISTORY_SCRIPT);

export async function readHistory(
  client: ScriptClient,
  channel: ChannelName,
  keys: ChannelKeys,
  after: number,
  limit: number,
): Promise<HistoryPage> {
  const args = [keys.meta, keys.history, after + 1, Math.max(1, limit)];
  let reply: unknown;
  try {
    reply = await client.evalsha(SHA, 2, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    reply = await client.eval(HISTORY_SCRIPT, 2, ...args);
  }
  if (!Array.isArray(reply) || reply.length !== 5) {
    throw new Error(`unexpected reply from the history script: ${JSON.stringify(reply)}`);
  }
  const [epoch, top, entries, life, previous] = reply as [
    string,
    number,
    [string, string[]][],
    string,
    string,
  ];
  const messages: BrokerMessage[] = [];
  if (limit > 0) {
    for (const [id, fields] of entries) {
      const offset = Number.parseInt(id, 10);
      if (!Number.isSafeInteger(offset)) continue;
      let data: string | undefined;
      // Entries written before lives were recorded have none: only their data can be compared.
      let life: string | undefined;
      for (let i = 0; i + 1 < fields.length; i += 2) {
        if (fields[i] === "d") data = fields[i + 1];
        else if (fields[i] === "l") life = fields[i + 1];
      }
      if (data === undefined) continue;
      messages.push(
        life === undefined
          ? { channel, epoch, offset, data }
          : { channel, epoch, offset, life, data },
      );
    }
  }
  const lives = previous === NO_LIFE ? [life] : [life, previous];
  return { epoch, top: Number(top), messages, lives };
}
