/**
 * Who may do what, once verified (`identity.ts`; `../auth.ts` verifies): the access rules the
 * routes enforce and the defences that must agree with them (a channel's broadcast budget is
 * spent only by those allowed to publish to it), in one place.
 */
import type { ChannelName } from "@realtime/protocol";
import { appError, Errors } from "../errors.ts";
import type { Identity, UserIdentity } from "./identity.ts";

/** The scope a service token needs to publish through `POST /api/publish`. */
export const PUBLISH_SCOPE = "publish";

/** Whether `identity` is a user: only users chat, subscribe and run jobs. */
export function isUser(identity: Identity): identity is UserIdentity {
  return identity.kind === "user";
}

/** The user `identity` names; a service token is refused with 403 and `message`. */
export function requireUser(identity: Identity, message: string): UserIdentity {
  if (!isUser(identity)) throw appError(Errors.FORBIDDEN, message);
  return identity;
}

/** Whether `identity` may publish through the publish API: a service token with the scope. */
export function mayPublish(identity: Identity): boolean {
  return identity.kind === "service" && identity.scopes.includes(PUBLISH_SCOPE);
}

/** Refuses with 403 unless `identity` {@link mayPublish}. */
export function requirePublisher(identity: Identity): void {
  if (!mayPublish(identity)) {
    throw appError(
      Errors.FORBIDDEN,
      `publishing needs a service token with the "${PUBLISH_SCOPE}" scope`,
    );
  }
}

/**
 * Who may subscribe: `user:<id>` belongs to that user alone; `channel:<id>` rooms are open to
 * every user. Also guards what is derived from a subscription (presence snapshots).
 */
export function authorize(identity: Identity, channels: readonly ChannelName[]): void {
  if (identity.kind !== "user") {
    throw appError(Errors.FORBIDDEN, "service tokens publish; they do not subscribe");
  }
  for (const channel of channels) {
    if (channel.startsWith("user:") && channel !== `user:${identity.userId}`) {
      throw appError(Errors.CHANNEL_FORBIDDEN, `${channel} belongs to another user`);
    }
  }
}
