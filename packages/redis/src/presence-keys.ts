/**
 * Key layout of the Redis presence store (its scripts: `presence-script.ts`). Every decision
 * about a user's transition runs in one script on the channel's hash-tagged slot, so two pods
 * can never both decide `online` (or `offline`) for one change; the pod registry and the
 * per-pod channel index share the `{presence}` slot.
 *
 *     <prefix>:presence-users:{channel:x}        hash userId → connections (0 while in grace)
 *     <prefix>:presence-names:{channel:x}        hash userId → display name
 *     <prefix>:presence-grace:{channel:x}        hash userId → "<deadline ms>:<token>"
 *     <prefix>:presence-pod:{channel:x}:<podId>  hash streamId → userId (one pod's connections)
 *     <prefix>:presence-reply:{channel:x}:<call> a decision's rows, for a retry (60 s)
 *     <prefix>:presence-version:{channel:x}      the version of the last transition (10 min)
 *     <prefix>:{presence}:pods                   zset podId → last heartbeat (ms)
 *     <prefix>:{presence}:index:<podId>          set of channels where the pod has entries
 *     <prefix>:{presence}:reaped                 set of pods reaped while maybe alive
 *     <prefix>:{presence}:reaper                 the reaper lock
 *     <prefix>:{presence}:lives                  hash podId → Redis life of its last heartbeat
 *
 * A grace token is `<podId>.<call>.<n>`: the pod that owns the grace period comes first.
 * Channel hashes empty themselves (Redis deletes empty hashes), so nothing needs a TTL.
 */
import type { ChannelName } from "@realtime/protocol";

export interface ChannelPresenceKeys {
  readonly users: string;
  readonly names: string;
  readonly grace: string;
  /** The counter of the channel's transition versions. */
  readonly version: string;
  /** The hash of one pod's connections in the channel. */
  pod(podId: string): string;
  /** Where the rows of call `callId` are kept for its retries. */
  reply(callId: string): string;
}

export function channelPresenceKeys(prefix: string, channel: ChannelName): ChannelPresenceKeys {
  const tag = `{${channel}}`;
  return {
    users: `${prefix}:presence-users:${tag}`,
    names: `${prefix}:presence-names:${tag}`,
    grace: `${prefix}:presence-grace:${tag}`,
    version: `${prefix}:presence-version:${tag}`,
    pod: (podId) => `${prefix}:presence-pod:${tag}:${podId}`,
    reply: (callId) => `${prefix}:presence-reply:${tag}:${callId}`,
  };
}

export interface PodRegistryKeys {
  readonly pods: string;
  readonly reaped: string;
  readonly lock: string;
  /** Hash pod → the Redis life (`master_replid`) of its last heartbeat. */
  readonly lives: string;
  index(podId: string): string;
}

export function podRegistryKeys(prefix: string): PodRegistryKeys {
  return {
    pods: `${prefix}:{presence}:pods`,
    reaped: `${prefix}:{presence}:reaped`,
    lock: `${prefix}:{presence}:reaper`,
    lives: `${prefix}:{presence}:lives`,
    index: (podId) => `${prefix}:{presence}:index:${podId}`,
  };
}
