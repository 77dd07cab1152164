/** Who a request is, as `../auth.ts` proves it from a verified token. */
import type { ChannelGrant } from "./grant.ts";

/** Who made a request, as proven by a verified token. */
export type Identity =
  | {
      readonly kind: "user";
      readonly userId: string;
      readonly userName: string;
      /** When the token expires, in ms since the epoch. */
      readonly expiresAt: number;
      /** The token's `realtime` claim: when present, the whole of what it may do (grant.ts). */
      readonly grant?: ChannelGrant;
    }
  | {
      readonly kind: "service";
      readonly service: string;
      readonly scopes: readonly string[];
      /** When the token expires, in ms since the epoch. */
      readonly expiresAt: number;
      /** The token's `realtime` claim: when present, the whole of what it may do (grant.ts). */
      readonly grant?: ChannelGrant;
    };

/** A verified user (not a backend service). */
export type UserIdentity = Extract<Identity, { readonly kind: "user" }>;

/**
 * Who publishes, as the owner parts idempotency keys are scoped by (`idempotency-key.ts` in
 * `@realtime/server`): a user by id, a backend service by name, never one for the other.
 */
export function publisherOf(identity: Identity): readonly string[] {
  return identity.kind === "user" ? ["user", identity.userId] : ["service", identity.service];
}
