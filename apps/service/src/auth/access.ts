/**
 * Who may do what, once verified (`identity.ts`; `../auth.ts` verifies): the one decision point
 * for channel access ({@link ChannelAccess}), used by every path an event can take — opening a
 * stream and resuming it (its replay), presence snapshots, history reads, chat posts and the
 * publish API — and by the defences that must agree with it (a channel's broadcast budget is
 * spent only by those allowed to publish to it). docs/security.md describes the model.
 */
import type { ChannelName } from "@realtime/protocol";
import { type AppError, appError, Errors } from "@realtime/server";
import type { AccessConfig } from "../config.ts";
import { type AccessMetrics, AuthzClient } from "./authz.ts";
import { type ChannelAction, grants } from "./grant.ts";
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

/** Whether `identity` may use the publish API at all: a service token with the scope. */
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
 * Where a decision came from: a fixed rule (`user:<id>` is its owner's), the token's
 * `realtime` claim, the product's backend (`AUTHZ_URL`), or `CHANNEL_DEFAULT_ACCESS`. Only the
 * backend's decisions can change while a token lives, so only they are checked again on open
 * streams (`grant-watch.ts`).
 */
export type DecisionSource = "rule" | "token" | "backend" | "default";

export type Decision =
  | { readonly allowed: true; readonly source: DecisionSource }
  | {
      readonly allowed: false;
      readonly source: DecisionSource;
      /** The refusal to answer with (403, or 503 when the backend could not decide). */
      readonly error: AppError;
      /** The backend could not be asked in time: a denial now, not a withdrawn grant. */
      readonly unavailable: boolean;
    };

/** The subject a backend is asked about: the user id, or `svc:<name>` for a service token. */
export function subjectOf(identity: Identity): string {
  return identity.kind === "user" ? identity.userId : `svc:${identity.service}`;
}

export interface ChannelAccessOptions {
  readonly config: AccessConfig;
  readonly metrics?: AccessMetrics;
  readonly warn?: (message: string) => void;
}

export class ChannelAccess {
  readonly #defaultOpen: boolean;
  readonly #backend: AuthzClient | null;

  constructor({ config, metrics, warn }: ChannelAccessOptions) {
    this.#defaultOpen = config.defaultAccess === "open";
    this.#backend =
      config.authzUrl === null
        ? null
        : new AuthzClient({
            url: config.authzUrl,
            cacheMs: config.authzCacheMs,
            timeoutMs: config.authzTimeoutMs,
            maxConcurrency: config.authzMaxConcurrency,
            metrics,
            warn,
          });
  }

  /**
   * Whether `identity` may `action` on `channel`, in this order: the fixed rules (a service
   * token never subscribes; `user:<id>` is subscribed to by its owner only), then the token's
   * `realtime` claim when it has one (its whole grant: nothing else is asked), then the backend
   * when `AUTHZ_URL` is set (404: no rule), then the default: `CHANNEL_DEFAULT_ACCESS` for users;
   * a service token's `publish` scope for services.
   */
  async decide(identity: Identity, channel: ChannelName, action: ChannelAction): Promise<Decision> {
    if (action === "subscribe") {
      if (identity.kind !== "user") {
        return deny("rule", "service tokens publish; they do not subscribe", Errors.FORBIDDEN);
      }
      if (channel.startsWith("user:")) {
        return channel === `user:${identity.userId}`
          ? ALLOWED.rule
          : deny("rule", `${channel} belongs to another user`);
      }
    }
    if (identity.grant) {
      return grants(identity.grant, action, channel)
        ? ALLOWED.token
        : deny("token", `your token does not grant ${action} on ${channel}`);
    }
    if (this.#backend) {
      const result = await this.#backend.ask({ userId: subjectOf(identity), channel, action });
      if (result === "allow") return ALLOWED.backend;
      if (result === "deny") return deny("backend", `${action} on ${channel} is not allowed`);
      if (result !== "no_rule") {
        return {
          allowed: false,
          source: "backend",
          unavailable: true,
          error: appError(
            Errors.AUTHZ_UNAVAILABLE,
            `access to ${channel} could not be checked; try again`,
            { "Retry-After": "1" },
          ),
        };
      }
    }
    if (identity.kind === "service" || this.#defaultOpen) return ALLOWED.default;
    return deny("default", `${channel} is closed: no rule grants you ${action} on it`);
  }

  /**
   * Refuses (the decision's {@link AppError}) unless `identity` may `action` on every one of
   * `channels`; resolves with each channel's decision, in order.
   */
  async require(
    identity: Identity,
    channels: readonly ChannelName[],
    action: ChannelAction,
  ): Promise<Decision[]> {
    const decisions = await Promise.all(channels.map((c) => this.decide(identity, c, action)));
    for (const decision of decisions) if (!decision.allowed) throw decision.error;
    return decisions;
  }

  /** Whether `identity` may `action` on `channel` (never throws). */
  async allows(identity: Identity, channel: ChannelName, action: ChannelAction): Promise<boolean> {
    return (await this.decide(identity, channel, action)).allowed;
  }
}

const ALLOWED = {
  rule: { allowed: true, source: "rule" },
  token: { allowed: true, source: "token" },
  backend: { allowed: true, source: "backend" },
  default: { allowed: true, source: "default" },
} as const satisfies Record<DecisionSource, Decision>;

function deny(
  source: DecisionSource,
  message: string,
  entry: typeof Errors.FORBIDDEN | typeof Errors.CHANNEL_FORBIDDEN = Errors.CHANNEL_FORBIDDEN,
): Decision {
  return { allowed: false, source, unavailable: false, error: appError(entry, message) };
}
