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
